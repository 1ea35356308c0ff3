"""CLI command groups; each module exposes `register(subparsers)` (see pipeline/cli.py)."""
