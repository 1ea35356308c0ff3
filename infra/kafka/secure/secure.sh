# Secure mode of infra/kafka/start (LT_KAFKA_SECURITY=scram or scram-tls). Source it; do not run it.
#
#   LT_KAFKA_SECURITY              scram      client listener SASL_PLAINTEXT (SCRAM-SHA-512)
#                                  scram-tls  client listener SASL_SSL (SCRAM-SHA-512 over TLS)
#   LT_KAFKA_TLS_PORT              optional extra SASL_SSL listener (either mode)
#   LT_KAFKA_TLS_DIR               certificates (default $STATE/tls; made by make-certs when missing)
#   LT_KAFKA_ADMIN_USER            the broker's own principal, a super user    (default admin)
#   LT_KAFKA_ADMIN_PASSWORD_FILE   its password, an owner-only file (default $STATE/secrets/admin.password,
#                                  generated on first start)
#
# Every listener authenticates, the controller listener included (SASL_PLAINTEXT on loopback):
# no principal is ever ANONYMOUS, so no ANONYMOUS super user is needed. The admin's SCRAM
# credential is written into the metadata log when the storage is formatted
# (`kafka-storage format --add-scram`), so the broker can authenticate to its own controller
# and to itself (transaction markers) before any client exists. The password reaches Java
# through an owner-only argument file and a FileConfigProvider, never through argv, and
# server.properties holds no secret.
#
# Expects from infra/kafka/start: LT_ROOT, LT_PYTHON, KAFKA_HOME, STATE, LT_KAFKA_PORT,
# LT_KAFKA_CONTROLLER_PORT. Defines: secure_prepare, secure_listener_config, secure_format,
# secure_probe.

SECURE_DIR="$KAFKA_HOME/secure"
LT_KAFKA_TLS_PORT="${LT_KAFKA_TLS_PORT:-}"
LT_KAFKA_TLS_DIR="${LT_KAFKA_TLS_DIR:-$STATE/tls}"
LT_KAFKA_ADMIN_USER="${LT_KAFKA_ADMIN_USER:-admin}"
LT_KAFKA_ADMIN_PASSWORD_FILE="${LT_KAFKA_ADMIN_PASSWORD_FILE:-$STATE/secrets/admin.password}"
SECRETS="$STATE/secrets"
JAAS_FILE="$SECRETS/broker-jaas.properties"
# Passwords end up inside a JAAS string and a --add-scram spec: no quotes, commas, brackets or '='.
PASSWORD_CHARS='^[A-Za-z0-9_.~+/-]{16,256}$'

case "$LT_KAFKA_ADMIN_USER" in
    ''|*[!A-Za-z0-9_.-]*) die "LT_KAFKA_ADMIN_USER=$LT_KAFKA_ADMIN_USER: use letters, digits, '_', '.', '-'." ;;
esac
if [ -n "$LT_KAFKA_TLS_PORT" ]; then
    check_port_value LT_KAFKA_TLS_PORT "$LT_KAFKA_TLS_PORT"
fi

# owner_only FILE: fail unless FILE exists and grants nothing to group or others.
owner_only() {
    local mode
    [ -f "$1" ] || die "$1 does not exist."
    mode="$(stat -c '%a' "$1")"
    [ $((8#$mode & 8#077)) -eq 0 ] || die "$1 is accessible by group or others (mode $mode); run: chmod 600 $1"
}

# secure_prepare: admin password (generated when missing), the broker's JAAS file, certificates.
secure_prepare() {
    # A data directory formatted without the admin credential cannot authenticate its own broker.
    if [ -f "$STATE/data/meta.properties" ] && [ "$(cat "$STATE/security.mode" 2>/dev/null)" != scram ]; then
        die "storage in $STATE/data was formatted without SCRAM; use another LT_RUN_DIR (or remove $STATE/data)."
    fi
    (umask 077 && mkdir -p "$SECRETS")
    chmod 700 "$SECRETS"
    if [ ! -e "$LT_KAFKA_ADMIN_PASSWORD_FILE" ]; then
        [ "$LT_KAFKA_ADMIN_PASSWORD_FILE" = "$SECRETS/admin.password" ] \
            || die "LT_KAFKA_ADMIN_PASSWORD_FILE=$LT_KAFKA_ADMIN_PASSWORD_FILE does not exist."
        [ ! -f "$STATE/data/meta.properties" ] \
            || die "storage in $STATE/data is formatted but $LT_KAFKA_ADMIN_PASSWORD_FILE is gone; restore it or remove $STATE/data."
        (umask 077 && "$LT_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$LT_KAFKA_ADMIN_PASSWORD_FILE")
        say "generated the $LT_KAFKA_ADMIN_USER password in $LT_KAFKA_ADMIN_PASSWORD_FILE (owner-only)"
    fi
    owner_only "$LT_KAFKA_ADMIN_PASSWORD_FILE"
    local password
    password="$(tr -d '\r\n' <"$LT_KAFKA_ADMIN_PASSWORD_FILE")"
    [[ "$password" =~ $PASSWORD_CHARS ]] \
        || die "$LT_KAFKA_ADMIN_PASSWORD_FILE: the password must be 16-256 characters of A-Z a-z 0-9 _ . ~ + / -"
    (umask 077 && printf 'jaas=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
        "$LT_KAFKA_ADMIN_USER" "$password" >"$JAAS_FILE.tmp")
    mv "$JAAS_FILE.tmp" "$JAAS_FILE"
    if [ "$LT_KAFKA_SECURITY" = scram-tls ] || [ -n "$LT_KAFKA_TLS_PORT" ]; then
        if [ ! -f "$LT_KAFKA_TLS_DIR/broker.keystore.pem" ]; then
            "$SECURE_DIR/make-certs" "$LT_KAFKA_TLS_DIR" >/dev/null || die "could not make certificates in $LT_KAFKA_TLS_DIR"
            say "made a local CA and broker certificate in $LT_KAFKA_TLS_DIR (clients: ssl.ca.location=$LT_KAFKA_TLS_DIR/ca.crt)"
        fi
        owner_only "$LT_KAFKA_TLS_DIR/broker.keystore.pem"
    fi
}

# secure_listener_config: the listener and authorization part of server.properties.
secure_listener_config() {
    local client_protocol=SASL_PLAINTEXT listeners advertised map
    [ "$LT_KAFKA_SECURITY" = scram-tls ] && client_protocol=SASL_SSL
    listeners="CLIENT://127.0.0.1:$LT_KAFKA_PORT,CONTROLLER://127.0.0.1:$LT_KAFKA_CONTROLLER_PORT"
    advertised="CLIENT://127.0.0.1:$LT_KAFKA_PORT"
    map="CONTROLLER:SASL_PLAINTEXT,CLIENT:$client_protocol"
    if [ -n "$LT_KAFKA_TLS_PORT" ]; then
        listeners="$listeners,CLIENT_TLS://127.0.0.1:$LT_KAFKA_TLS_PORT"
        advertised="$advertised,CLIENT_TLS://127.0.0.1:$LT_KAFKA_TLS_PORT"
        map="$map,CLIENT_TLS:SASL_SSL"
    fi
    cat <<EOF
# Secure mode ($LT_KAFKA_SECURITY): every listener authenticates with SASL/SCRAM-SHA-512.
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=CLIENT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$map
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=SCRAM-SHA-512
# The broker's own credential is read from an owner-only file at start; this file holds no secret.
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
listener.name.client.scram-sha-512.sasl.jaas.config=\${file:$JAAS_FILE:jaas}
listener.name.controller.scram-sha-512.sasl.jaas.config=\${file:$JAAS_FILE:jaas}
# Deny by default; the broker's principal is the only super user. Everyone else gets ACLs
# from \`lookthrough acl apply\`.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$LT_KAFKA_ADMIN_USER
EOF
    if [ "$LT_KAFKA_SECURITY" = scram-tls ] || [ -n "$LT_KAFKA_TLS_PORT" ]; then
        cat <<EOF
listener.name.client_tls.scram-sha-512.sasl.jaas.config=\${file:$JAAS_FILE:jaas}
ssl.keystore.type=PEM
ssl.keystore.location=$LT_KAFKA_TLS_DIR/broker.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$LT_KAFKA_TLS_DIR/ca.crt
ssl.enabled.protocols=TLSv1.3,TLSv1.2
ssl.client.auth=none
EOF
    fi
}

# secure_format CLUSTER_ID CONFIG LOG: format the storage with the admin's SCRAM credential.
# The java launcher expands @argfile itself, so the password never appears in /proc/*/cmdline.
secure_format() {
    local cluster_id="$1" config="$2" log="$3" argfile password rc=0
    argfile="$SECRETS/format.args"
    password="$(tr -d '\r\n' <"$LT_KAFKA_ADMIN_PASSWORD_FILE")"
    (umask 077 && cat >"$argfile" <<EOF
-Dlog4j.configuration=file:$KAFKA_HOME/log4j.properties
-Dkafka.logs.dir=$STATE/logs
-cp "$KAFKA_HOME/lib/*"
kafka.tools.StorageTool format --ignore-formatted -t $cluster_id -c "$config"
--add-scram "SCRAM-SHA-512=[name=$LT_KAFKA_ADMIN_USER,iterations=8192,password=$password]"
EOF
)
    java "@$argfile" >>"$log" 2>&1 || rc=$?
    rm -f "$argfile"
    [ "$rc" -eq 0 ] || return "$rc"
    echo scram >"$STATE/security.mode"
}

# secure_probe BOOTSTRAP ARGS...: infra/lib/probe.py's readiness check, authenticated as the admin.
secure_probe() {
    local bootstrap="$1"
    shift
    local ca=()
    [ "$LT_KAFKA_SECURITY" = scram-tls ] && ca=(--ca "$LT_KAFKA_TLS_DIR/ca.crt")
    "$LT_PYTHON" "$LT_ROOT/infra/lib/probe.py" kafka "$bootstrap" --user "$LT_KAFKA_ADMIN_USER" \
        --password-file "$LT_KAFKA_ADMIN_PASSWORD_FILE" "${ca[@]}" "$@"
}
