"""Readiness probes used by infra/*/start: exit 0 when the service answers, 1 otherwise.

    probe.py kafka HOST:PORT [--wait S] [--pid PID]             metadata lists at least one broker
              [--user NAME --password-file FILE [--ca CA.crt]]   ... authenticated with SCRAM-SHA-512
    probe.py clickhouse HOST HTTP_PORT [--wait S] [--pid PID]   HTTP `SELECT 1` returns 1
--wait retries for up to S seconds (default: one attempt); --pid gives up early when
that process has exited. A password is read from its file, never from argv. Prints a
one-line reason on failure; never a stack trace.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request


def probe_kafka(bootstrap: str, timeout: float, security: dict[str, str]) -> str | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    # log_level 0 keeps librdkafka's "connection refused" chatter out of the start output;
    # error_cb keeps the last reason (an authentication failure says more than a timeout).
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": int(timeout * 1000),
                         "error_cb": lambda err: errors.append(err.str()), **security})  # fmt: skip
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        detail = errors[-1] if errors else (exc.args[0].str() if exc.args else str(exc))
        return f"no metadata from {bootstrap}: {detail}"
    if not md.brokers:
        return f"{bootstrap} answered without brokers"
    return None


def probe_clickhouse(host: str, http_port: int, timeout: float) -> str | None:
    url = f"http://{host}:{http_port}/?query=SELECT%201"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read().decode().strip()
    except (OSError, urllib.error.URLError) as exc:
        return f"{url}: {exc}"
    if body != "1":
        return f"{url}: unexpected answer {body!r}"
    return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="service", required=True)
    k = sub.add_parser("kafka")
    k.add_argument("bootstrap")
    k.add_argument("--timeout", type=float, default=2.0)
    k.add_argument("--wait", type=float, default=0.0)
    k.add_argument("--pid", type=int)
    k.add_argument("--user", help="SCRAM-SHA-512 user (with --password-file)")
    k.add_argument("--password-file")
    k.add_argument("--ca", help="CA certificate: connect with SASL_SSL")
    c = sub.add_parser("clickhouse")
    c.add_argument("host")
    c.add_argument("http_port", type=int)
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--wait", type=float, default=0.0)
    c.add_argument("--pid", type=int)
    args = parser.parse_args()
    security: dict[str, str] = {}
    if args.service == "kafka" and args.user:
        with open(args.password_file) as fh:
            password = fh.read().strip()
        security = {"security.protocol": "SASL_SSL" if args.ca else "SASL_PLAINTEXT",
                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": args.user,
                    "sasl.password": password}  # fmt: skip
        if args.ca:
            security["ssl.ca.location"] = args.ca

    deadline = time.monotonic() + args.wait
    while True:
        if args.service == "kafka":
            problem = probe_kafka(args.bootstrap, args.timeout, security)
        else:
            problem = probe_clickhouse(args.host, args.http_port, args.timeout)
        if problem is None:
            return 0
        if args.pid is not None and not process_alive(args.pid):
            problem = f"process {args.pid} exited; last probe: {problem}"
            break
        if time.monotonic() >= deadline:
            if args.wait:
                problem = f"not ready after {args.wait:g}s; last probe: {problem}"
            break
        time.sleep(0.25)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
