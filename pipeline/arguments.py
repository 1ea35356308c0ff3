"""argparse value types shared by the commands: a bad count fails at parsing, with a message
that names the option (argparse's), instead of deep inside a run or after minutes of waiting.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Collection
from typing import TypeVar

N = TypeVar("N", int, float)


def _bounded(convert: Callable[[str], N], accept: Callable[[N], bool], requirement: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        value = convert(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{requirement}, not {text.strip()}")
        return value

    return parse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text.strip()}")
    return value


# Counts of reports, workers, runs, records per batch.
positive_int = _bounded(_int, lambda v: v >= 1, "must be a positive integer")
# Where 0 means "no limit" or "none".
non_negative_int = _bounded(_int, lambda v: v >= 0, "must be 0 or more")
# Rates and timeouts.
positive_float = _bounded(_float, lambda v: v > 0, "must be greater than 0")
# Where 0 means "never" or "unlimited".
non_negative_float = _bounded(_float, lambda v: v >= 0, "must be 0 or more")


def positive_int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers ≥ 1, at least one: ``1,2``."""
    items = _items(text)
    try:
        return tuple(positive_int(item) for item in items)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def name_list(choices: Collection[str]) -> Callable[[str], tuple[str, ...]]:
    """A type for comma-separated names out of `choices`, at least one: ``x25519,rsa``."""

    def parse(text: str) -> tuple[str, ...]:
        items = _items(text)
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return tuple(dict.fromkeys(items))  # once each, in the order given

    return parse


def _items(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected at least one comma-separated value")
    return items

