"""SQL literals for query parameters, rendered client-side for both backends.

ClickHouse 18.16 has no server-side query parameters, so values are inlined as literals; every
value goes through `literal`, which quotes strings with ClickHouse's escaping rules, so no
parameter can change the statement's shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any


def quote(text: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped, control characters as escapes."""
    out = []
    for ch in text:
        if ch in ("\\", "'"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\0":
            out.append("\\0")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def literal(value: Any) -> str:
    """A value as a ClickHouse literal: bool, int, float, str, date, or a sequence of those."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, dt.datetime):
        raise TypeError("datetimes are not used as query parameters")
    if isinstance(value, dt.date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, Sequence):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"no SQL literal for {type(value).__name__}")
