"""Query results as text: an aligned table for people, CSV and JSON for programs.

Lists print space-separated and mappings as `key=value` in the table and CSV forms, and stay
structured in JSON; dates and times are ISO 8601. Column widths account for wide (CJK) characters.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import unicodedata
from typing import Any

from pipeline.store.backend import QueryResult

FORMATS = ("table", "csv", "json")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return " ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def render(result: QueryResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{k: _jsonable(v) for k, v in row.items()} for row in result.dicts()],
                          ensure_ascii=False, indent=1) + "\n"  # fmt: skip
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([cell(v) for v in row] for row in result.rows)
        return buf.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    cells = [result.columns] + [[cell(v) for v in row] for row in result.rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(result.columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(text + " " * (w - _width(text)) for text, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"({len(result.rows)} rows)")
    return "\n".join(lines) + "\n"
