"""Batch files for `lookthrough send`: one report per JSON line or CSV row → `reporter.Report`.

`read_batch(path, fmt)` yields one `BatchEntry` per report in file order: its line number and
either a `Report` or a `LineProblem` (the profile §7 code when one applies, and a message that
names fields, never values). It never raises for a bad line; an unreadable file raises ConfigError.
The format is documented in `FORMAT_DOC` (Markdown, pasted into the README).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.reporter import Report, TerminalInfo

FORMAT_DOC = """\
### Batch file format (`lookthrough send`)

One report per line, UTF-8. Two encodings of the same fields: JSON lines (`--format json`, the
default) and CSV (`--format csv`, or a file name ending in `.csv`).

**JSON lines**: one object per line; blank lines are ignored. A report carries either the
terminal information to encrypt (`terminal` plus the plaintext report-line fields) or a report
line that is already sealed (`report`), never both:

```json
{"report_id": "0101-20250106-000001", "investor_id": "00012345", "user_id": "00012345",
 "trading_day": "20250106", "vendor_id": "XY", "app_type": 1, "public_ip": "203.0.113.7",
 "public_port": 51234, "login_time": "2025-01-06 09:00:01", "app_id": "XY_Q7_V1.0.0",
 "terminal": {"type": 1, "collect_flags": 0,
              "fields": {"collect_time": "2025-01-06 09:00:00", "private_ip1": "192.168.1.20",
                         "mac1": "00-1A-2B-3C-4D-5E", "device_name": "DESKTOP-01",
                         "os_version": "Windows 11", "disk_serial": "S4EVNX0R", "cpu_serial": "BFEBFBFF000906EA",
                         "bios_serial": "PF2ABCDE", "system_disk_partition": "C:\\\\ 256G"}}}
{"report_id": "0101-20250106-000002", "investor_id": "00012346", "user_id": "00012346",
 "trading_day": "20250106", "report": "XY@7@AhCd...==@1@203.0.113.8@51235@2025-01-06 09:00:02@XY_Q7_V1.0.0@"}
```
(each object on a single line in the file; wrapped here for reading)

Fields:

- `report_id` (required): unique per reporter, ≤ 64 of `[A-Za-z0-9_.-]`. The idempotence key: a
  report ID already sent (recorded in the state file, or found on the topic) is skipped.
- `investor_id`, `user_id`, `trading_day` (required): envelope fields of profile §2;
  `trading_day` is `YYYYMMDD`.
- `broker_id`: required in an exchange's file (the member); a futures company's defaults to its ID.
- `received_at`: the reporter's receive time in UTC epoch milliseconds; default: time of sending.
- `correction_of`: the report ID this report corrects; null or absent: none.
- `report`: a complete, already sealed report line (profile §3), sent verbatim. Or:
- `terminal`: `{"type": layout code 1–7, "fields": {name: text}, "collect_flags": bitmask}`
  (`collect_flags` defaults to 0). Field names are profile §5's for the layout (`collect_time`,
  `private_ip1`, `mac1`, `device_name`, …); an absent field is sent empty. With `terminal`:
  - `vendor_id`, `app_type` (default 1), `public_ip`, `public_port`, `login_time`, `app_id`:
    the plaintext report-line fields of profile §3; `relay_app_id` for relay types 2 and 3;
  - `key_version`: default the newest usable key of `--environment` in the public keyring.

Integers (`app_type`, `public_port`, `key_version`, `received_at`, `type`, `collect_flags`) may
be JSON numbers or decimal strings. Unknown field names are errors (a typo must not silently drop data).

**CSV**: a header row naming the columns, then one report per row (RFC 4180 quoting; a
UTF-8 byte-order mark is ignored). The columns are the JSON fields above, with `terminal`
flattened: `terminal.type`, `terminal.collect_flags`, and `terminal.<field>` for each terminal
field (e.g. `terminal.mac1`). An empty cell means the field is absent. Line numbers count the
header as line 1.
"""

_TOP = frozenset({
    "report_id", "broker_id", "investor_id", "user_id", "trading_day", "received_at", "correction_of",
    "report", "terminal", "vendor_id", "key_version", "app_type", "public_ip", "public_port", "login_time",
    "app_id", "relay_app_id",
})  # fmt: skip
_LINE_FIELDS = ("vendor_id", "key_version", "app_type", "public_ip", "public_port", "login_time", "app_id",
                "relay_app_id")  # fmt: skip
_ENVELOPE_TEXT = ("report_id", "investor_id", "user_id", "trading_day")
_TERMINAL_KEYS = frozenset({"type", "fields", "collect_flags"})
# The code the pipeline gives a non-numeric value of these report-line fields.
_INTEGER_CODES = {"app_type": "E104", "key_version": "E104", "public_port": "E303"}
FORMATS = ("json", "csv")


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why a line cannot be sent: the profile §7 code if one applies, and a value-free message."""

    code: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}" if self.code else self.message


@dataclass(frozen=True, slots=True)
class BatchEntry:
    line: int
    report: Report | None
    problem: LineProblem | None = None


class _Bad(Exception):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.problem = LineProblem(code, message)


def detect_format(path: Path, fmt: str | None) -> str:
    """`fmt` if given, else csv for a `.csv` file name and json otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"batch format must be one of {FORMATS}")
        return fmt
    return "csv" if path.suffix.lower() == ".csv" else "json"


def read_batch(path: Path, fmt: str) -> Iterator[BatchEntry]:
    """Every report of the file in order; see the module docstring."""
    try:
        if fmt == "csv":
            yield from _read_csv(path)
        else:
            yield from _read_jsonl(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def count_reports(path: Path, fmt: str) -> int:
    """A fast estimate of the number of reports (non-blank lines, minus the CSV header)."""
    count = 0
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                count += 1
    return max(0, count - 1) if fmt == "csv" else count


def parse_record(obj: object) -> Report:
    """A `Report` from a decoded JSON object (or a CSV row in the same shape); raises _Bad."""
    if not isinstance(obj, dict):
        raise _Bad("a line must be a JSON object")
    unknown = sorted(set(obj) - _TOP)
    if unknown:
        raise _Bad(f"unknown field(s) {unknown}")
    for name in _ENVELOPE_TEXT:
        if obj.get(name) in (None, ""):
            raise _Bad(f"envelope field {name} is missing or empty", "E102")
    text = {name: _text(obj, name) for name in (*_ENVELOPE_TEXT, "broker_id", "correction_of")}
    common: dict[str, Any] = {
        "report_id": text["report_id"],
        "investor_id": text["investor_id"],
        "user_id": text["user_id"],
        "trading_day": text["trading_day"],
        "broker_id": text["broker_id"],
        "correction_of": text["correction_of"],
        "received_at": _integer(obj, "received_at"),
    }
    if obj.get("report") is not None:
        given = sorted(name for name in (*_LINE_FIELDS, "terminal") if obj.get(name) is not None)
        if given:
            raise _Bad(f"a line with a ready report must not also carry {given}")
        return Report(**common, report_line=_text(obj, "report"))
    if obj.get("terminal") is None:
        raise _Bad("either report or terminal is required")
    app_type = _integer(obj, "app_type")
    port = obj.get("public_port")
    return Report(
        **common,
        terminal=_terminal(obj["terminal"]),
        vendor_id=_text(obj, "vendor_id") or "",
        key_version=_integer(obj, "key_version"),
        app_type=1 if app_type is None else app_type,
        public_ip=_text(obj, "public_ip") or "",
        public_port="" if port is None else str(_integer(obj, "public_port")),
        login_time=_text(obj, "login_time") or "",
        app_id=_text(obj, "app_id") or "",
        relay_app_id=_text(obj, "relay_app_id") or "",
    )


def _terminal(raw: object) -> TerminalInfo:
    if not isinstance(raw, dict):
        raise _Bad("terminal must be an object")
    unknown = sorted(set(raw) - _TERMINAL_KEYS)
    if unknown:
        raise _Bad(f"unknown terminal key(s) {unknown}; expected type, fields, collect_flags")
    code = _integer(raw, "type", "terminal.type")
    if code is None:
        raise _Bad("terminal.type is required", "E301")
    fields = raw.get("fields") or {}
    if not isinstance(fields, dict):
        raise _Bad("terminal.fields must be an object")
    values: dict[str, str] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise _Bad(f"terminal field {name} must be a string")
        values[name] = value
    flags = _integer(raw, "collect_flags", "terminal.collect_flags")
    return TerminalInfo(code, values, 0 if flags is None else flags)


def _text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _Bad(f"{name} must be a string")


def _integer(obj: Mapping[str, Any], name: str, label: str | None = None) -> int | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise _Bad(f"{label or name} must be a non-negative integer", _INTEGER_CODES.get(name))


def _entry(line: int, obj: object) -> BatchEntry:
    try:
        return BatchEntry(line, parse_record(obj))
    except _Bad as bad:
        return BatchEntry(line, None, bad.problem)


def _read_jsonl(path: Path) -> Iterator[BatchEntry]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield BatchEntry(number, None, LineProblem(None, "line is not UTF-8"))
                continue
            except json.JSONDecodeError as exc:
                yield BatchEntry(number, None, LineProblem(None, f"invalid JSON ({exc.msg} at column {exc.colno})"))
                continue
            yield _entry(number, obj)


def _read_csv(path: Path) -> Iterator[BatchEntry]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable CSV header: {exc}") from None
        columns = [name.strip() for name in header]
        if len(set(columns)) != len(columns):
            raise ConfigError(f"{path}: duplicate column names in the header")
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise ConfigError(f"{path}: not UTF-8 near line {start}") from None
            except csv.Error as exc:
                yield BatchEntry(start, None, LineProblem(None, f"malformed CSV row ({exc})"))
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                yield BatchEntry(line, None, LineProblem(None, f"row has {len(row)} cells, the header {len(columns)}"))
                continue
            yield _entry(line, _csv_object(columns, row))


def _csv_object(columns: list[str], row: list[str]) -> dict[str, Any]:
    """A CSV row in the JSON-line shape; empty cells are absent."""
    obj: dict[str, Any] = {}
    terminal: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for name, cell in zip(columns, row, strict=True):
        if cell == "":
            continue
        if name.startswith("terminal."):
            sub = name[len("terminal."):]
            if sub in ("type", "collect_flags"):
                terminal[sub] = cell
            else:
                fields[sub] = cell
        else:
            obj[name] = cell
    if terminal or fields:
        terminal["fields"] = fields
        obj["terminal"] = terminal
    return obj
