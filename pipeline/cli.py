"""Command-line entry point: `lookthrough <command>` (also `python -m pipeline`).

Thin by design: each command group lives in its own module and registers its
sub-parser here; the handler receives the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    parser = argparse.ArgumentParser(prog="lookthrough", description=__doc__.splitlines()[0])
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
