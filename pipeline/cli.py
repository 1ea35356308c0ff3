"""Command-line entry point: `lookthrough <command>` (also `python -m pipeline`).

Thin by design: each command group lives in its own module and registers its
sub-parser here; the handler receives the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from pipeline.errors import LookthroughError

# Modules that expose `register(subparsers)`; each sets `handler` on its parsers.
COMMAND_MODULES = (
    "pipeline.crypto.admin",
    "pipeline.commands.generate",
    "pipeline.commands.bench",
    "pipeline.commands.run",
    "pipeline.commands.subscribe",
    "pipeline.commands.demo",
    "pipeline.send",
    "pipeline.commands.acl",
    "pipeline.commands.store",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookthrough",
        description="The monitoring center's side of futures look-through supervision (看穿式监管): "
        "terminal-information reports from Kafka, decrypted, validated, enriched and routed exactly once "
        "to the exchanges, the analytics store and back to the reporters.",
        epilog="`lookthrough COMMAND --help` for each command; `infra/demo` runs the whole flow locally.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except LookthroughError as exc:
        print(f"lookthrough: error: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:  # a broker out of reach, a refused request: a message, not a traceback
        print(f"lookthrough: error: Kafka: {kafka_problem(exc)}", file=sys.stderr)
        return 2


def kafka_problem(exc: KafkaException) -> str:
    """What went wrong, from librdkafka's error (its text names no record contents), with a hint
    when the broker could not be reached."""
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return str(exc)
    if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT):
        return f"{error.str()} (is the broker running, and LT_KAFKA_BOOTSTRAP its address?)"
    return error.str()
