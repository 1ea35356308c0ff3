"""Readiness probe of a secure broker: exit 0 when a SCRAM-authenticated metadata request lists a broker.

    probe.py HOST:PORT --user NAME --password-file FILE [--ca CA.crt] [--wait S] [--pid PID]

Like infra/lib/probe.py, but authenticated (the password is read from the file, never argv).
Prints a one-line reason on failure; never a stack trace.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def probe(config: dict[str, str], timeout: float) -> str | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    admin = AdminClient({**config, "log_level": 0, "socket.timeout.ms": int(timeout * 1000),
                         "error_cb": lambda err: errors.append(err.str())})  # fmt: skip
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        detail = errors[-1] if errors else (exc.args[0].str() if exc.args else str(exc))
        return f"no metadata from {config['bootstrap.servers']}: {detail}"
    if not md.brokers:
        return f"{config['bootstrap.servers']} answered without brokers"
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
    parser.add_argument("bootstrap")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--ca", help="CA certificate: connect with SASL_SSL")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL" if args.ca else "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": args.user,
        "sasl.password": args.password_file.read_text().strip(),
    }
    if args.ca:
        config["ssl.ca.location"] = args.ca

    deadline = time.monotonic() + args.wait
    while True:
        problem = probe(config, args.timeout)
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
    print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
