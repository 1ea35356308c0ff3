"""The wire profile's data tables (schemas/profile/*.json) as typed, immutable objects.

Layouts, limits and codes are data so operators can follow a change in the real
specification without a release; this module only reads and checks them, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipeline.errors import ConfigError
from pipeline.schemas import read_data_file


@dataclass(frozen=True, slots=True)
class FieldFormat:
    """How one terminal field is validated; `target` is its TerminalRecord field."""

    format: str
    target: str
    max_length: int | None


@dataclass(frozen=True, slots=True)
class Layout:
    """One terminal layout of profile §5.

    `items` maps each collect_flags bit to the field positions of that item;
    `optional` holds positions that may be empty without their bit.
    """

    code: int
    kind: str
    family: str
    fields: tuple[str, ...]
    items: tuple[tuple[int, tuple[int, ...]], ...]
    optional: frozenset[int]


@dataclass(frozen=True, slots=True)
class Limits:
    """`ids_pattern`: when `id_pattern` is one character class repeated (`^[...]+$`), the same test
    for a concatenation of non-empty identifiers (all valid exactly when it matches), else None."""

    report_line_max_bytes: int
    report_line_fields: int
    plaintext_max_bytes: int
    id_pattern: re.Pattern[str]
    max_length: dict[str, int]
    app_types: frozenset[int]
    relay_app_types: frozenset[int]
    time_skew_seconds: int
    login_time_future_tolerance_seconds: int
    device_sharing_max_investors: int
    device_sharing_window_seconds: int
    mac_flags: dict[str, str]
    exchanges: tuple[str, ...]
    ids_pattern: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    kind: str
    stage: str
    text: str


_VALID_FORMATS = {"ip", "mac", "text", "upper_text", "location"}
# Fields every layout handles itself rather than through field_formats.
_STRUCTURAL = {"type", "collect_time", "collect_flags"}


def _layout(raw: dict[str, Any], formats: dict[str, FieldFormat]) -> Layout:
    fields = tuple(raw["fields"])
    if fields[0] != "type" or fields[-1] != "collect_flags" or "collect_time" not in fields:
        raise ConfigError(f"layout {raw['code']}: must start with type, end with collect_flags")
    for name in fields:
        if name not in _STRUCTURAL and name not in formats:
            raise ConfigError(f"layout {raw['code']}: field {name!r} has no entry in field_formats")
    position = {name: i for i, name in enumerate(fields)}
    if "bits" in raw:
        items = tuple(
            (int(bit), tuple(position[name] for name in names)) for bit, names in raw["bits"].items()
        )
    else:
        # Profile §5: for non-PC layouts bit i is field i (the type code is field 0).
        items = tuple((i, (i,)) for i in range(len(fields) - 1))
    optional = frozenset(position[name] for name in raw.get("optional", ()))
    return Layout(int(raw["code"]), raw["kind"], raw["family"], fields, items, optional)


@cache
def layouts() -> dict[int, Layout]:
    """Terminal layouts by type code."""
    data = read_data_file("profile/terminal_layouts.json")
    formats = field_formats()
    result = {}
    for raw in data["layouts"]:
        layout = _layout(raw, formats)
        result[layout.code] = layout
    return result


@cache
def field_formats() -> dict[str, FieldFormat]:
    data = read_data_file("profile/terminal_layouts.json")["field_formats"]
    result = {}
    for name, spec in data.items():
        if name.startswith("_"):
            continue
        if spec["format"] not in _VALID_FORMATS:
            raise ConfigError(f"field_formats.{name}: unknown format {spec['format']!r}")
        result[name] = FieldFormat(spec["format"], spec.get("target", name), spec.get("max"))
    return result


@cache
def limits() -> Limits:
    data = read_data_file("profile/limits.json")
    sharing = data["device_sharing"]
    return Limits(
        report_line_max_bytes=int(data["report_line_max_bytes"]),
        report_line_fields=int(data["report_line_fields"]),
        plaintext_max_bytes=int(data["plaintext_max_bytes"]),
        id_pattern=re.compile(data["id_pattern"]),
        max_length={k: int(v) for k, v in data["max_length"].items()},
        app_types=frozenset(int(k) for k in data["app_types"]),
        relay_app_types=frozenset(int(k) for k in data["relay_app_types"]),
        time_skew_seconds=int(data["time_skew_seconds"]),
        login_time_future_tolerance_seconds=int(data["login_time_future_tolerance_seconds"]),
        device_sharing_max_investors=int(sharing["max_investors"]),
        device_sharing_window_seconds=int(sharing["window_seconds"]),
        mac_flags=dict(data["mac_flags"]),
        exchanges=tuple(data["exchanges"]),
        ids_pattern=_ids_pattern(data["id_pattern"]),
    )


# `^[class]+$` with a plain class (no brackets, escapes or flags): membership is per character, so
# one fullmatch over joined identifiers decides them all (one regex call instead of one per field).
_CHARACTER_RUN = re.compile(r"\^?(\[[^\[\]\\]+\])\+\$?")


def _ids_pattern(id_pattern: str) -> re.Pattern[str] | None:
    match = _CHARACTER_RUN.fullmatch(id_pattern)
    return re.compile(f"{match.group(1)}+") if match else None


@cache
def codes() -> dict[str, Code]:
    data = read_data_file("profile/codes.json")["codes"]
    return {name: Code(name, spec["kind"], spec["stage"], spec["text"]) for name, spec in data.items()}
