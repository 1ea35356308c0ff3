# Shared helpers for the infra/ scripts. Source it; do not run it.
#
# Sets LT_ROOT (repository root) and LT_RUN_DIR (absolute; default <repo>/.run)
# and offers small functions for messages, pid files and port checks.

LT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LT_RUN_DIR="${LT_RUN_DIR:-$LT_ROOT/.run}"
mkdir -p "$LT_RUN_DIR"
LT_RUN_DIR="$(cd "$LT_RUN_DIR" && pwd)"
LT_PYTHON="$LT_ROOT/.venv/bin/python"
export LT_RUN_DIR

# Name shown in messages; each script sets it before sourcing.
: "${LT_COMPONENT:=infra}"

say() { printf '[%s] %s\n' "$LT_COMPONENT" "$*"; }
die() { printf '[%s] error: %s\n' "$LT_COMPONENT" "$*" >&2; exit 1; }

# require_cmd CMD HINT: fail with a readable message when CMD is not on PATH.
require_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH. $2"
}

require_venv() {
    [ -x "$LT_PYTHON" ] || die "no Python environment at $LT_ROOT/.venv; run infra/setup first."
}

# is_port NAME VALUE: fail unless VALUE is a TCP port number.
check_port_value() {
    case "$2" in
        ''|*[!0-9]*) die "$1=$2 is not a port number." ;;
    esac
    [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1=$2 is not a port number (1-65535)."
}

# port_busy PORT: succeed when something already listens on PORT (any address).
port_busy() {
    local port="$1"
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# port_owner PORT: best-effort description of who listens on PORT.
port_owner() {
    local owner=""
    if command -v ss >/dev/null 2>&1; then
        owner="$(ss -Hltnp "sport = :$1" 2>/dev/null \
            | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n1)"
    fi
    printf '%s' "${owner:-unknown process}"
}

# ensure_ports_free VAR...: each VAR names an environment variable holding a port.
ensure_ports_free() {
    local var port
    for var in "$@"; do
        port="${!var}"
        if port_busy "$port"; then
            die "port $port ($var) is already in use by $(port_owner "$port"). Stop that process or choose another port, e.g. $var=$((port + 100))."
        fi
    done
}

# live_pid PIDFILE MARKER: print the pid from PIDFILE when that process is alive
# and its command line contains MARKER (guards against recycled pids).
live_pid() {
    local pidfile="$1" marker="$2" pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    printf '%s' "$pid"
}

# pid_alive PID: running and not a zombie (zombies linger when PID 1 does not reap).
pid_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    [ "$state" != "Z" ]
}

# stop_pid PID TIMEOUT_SECONDS: SIGTERM, wait, then SIGKILL if still alive.
stop_pid() {
    local pid="$1" timeout="$2" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    say "pid $pid still alive after ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    die "could not stop pid $pid"
}

# show_log_tail FILE: print the last lines of a log to stderr (for failed starts).
show_log_tail() {
    [ -f "$1" ] || return 0
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n 30 "$1" >&2
    printf -- '---\n' >&2
}
