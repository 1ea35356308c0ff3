"""Report line (profile §3) and terminal-information (profile §5) codec.

`parse_report_line` turns the reporter's ASCII line into a `ReportLine` or raises
`EnvelopeError` (E103, E104); `split_terminal_info` turns decrypted bytes into a layout
and its raw fields or raises `TerminalInfoError` (E301, E302, E304). The `build_*`
functions are the reporter-side inverses. Field formats are checked in `normalize`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.errors import EnvelopeError, TerminalInfoError
from pipeline.profile import Layout, layouts, limits

SEPARATOR = "@"


@dataclass(frozen=True, slots=True)
class ReportLine:
    """The nine fields of a report line; `terminal_info` is the still-encrypted blob."""

    vendor_id: str
    key_version: int
    terminal_info: bytes
    app_type: int
    public_ip: str
    public_port: str
    login_time: str
    app_id: str
    relay_app_id: str

    @property
    def associated_data(self) -> bytes:
        """AEAD associated data binding the blob to its vendor and key version (profile §4)."""
        return f"{self.vendor_id}@{self.key_version}".encode("ascii")


def check_identifier(name: str, value: str, *, required: bool = True) -> None:
    """Raise E104 unless `value` fits the profile's identifier charset and length for `name`."""
    lim = limits()
    if not value:
        if required:
            raise EnvelopeError("E104", f"{name} is empty")
        return
    if len(value) > lim.max_length[name]:
        raise EnvelopeError("E104", f"{name} longer than {lim.max_length[name]} characters")
    if not lim.id_pattern.fullmatch(value):
        raise EnvelopeError("E104", f"{name} has illegal characters")


def _positive_int(name: str, text: str) -> int:
    if not text.isdigit() or len(text) > 9 or int(text) <= 0:
        raise EnvelopeError("E104", f"{name} is not a positive integer")
    return int(text)


def parse_report_line(line: str) -> ReportLine:
    """Split and check a report line; formats of IP, port and time are left to `normalize`."""
    lim = limits()
    if not line.isascii():
        raise EnvelopeError("E104", "report line is not ASCII")
    if len(line) > lim.report_line_max_bytes:
        raise EnvelopeError("E104", f"report line longer than {lim.report_line_max_bytes} bytes")
    parts = line.split(SEPARATOR)
    if len(parts) != lim.report_line_fields:
        raise EnvelopeError(
            "E103", f"report line has {len(parts)} fields, expected {lim.report_line_fields}"
        )
    vendor_id, key_version, blob, app_type, public_ip, public_port, login_time, app_id, relay = parts
    check_identifier("vendor_id", vendor_id)
    version = _positive_int("key_version", key_version)
    if not blob:
        raise EnvelopeError("E104", "terminal_info is empty")
    try:
        terminal_info = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("E104", "terminal_info is not padded standard Base64") from None
    if not app_type.isdigit() or int(app_type) not in lim.app_types:
        raise EnvelopeError("E104", "app_type is not one of the profile's app types")
    check_identifier("app_id", app_id)
    check_identifier("relay_app_id", relay, required=False)
    if relay == app_id:
        raise EnvelopeError("E104", "relay_app_id equals app_id; they must differ")
    return ReportLine(
        vendor_id, version, terminal_info, int(app_type), public_ip, public_port, login_time, app_id, relay
    )


def build_report_line(
    *,
    vendor_id: str,
    key_version: int,
    terminal_info: bytes,
    app_type: int,
    public_ip: str,
    public_port: int | str,
    login_time: str,
    app_id: str,
    relay_app_id: str = "",
) -> str:
    """Join the nine fields; the inverse of `parse_report_line` (does not validate formats)."""
    fields = [
        vendor_id,
        str(key_version),
        base64.b64encode(terminal_info).decode("ascii"),
        str(app_type),
        public_ip,
        str(public_port),
        login_time,
        app_id,
        relay_app_id,
    ]
    for field in fields:
        if SEPARATOR in field:
            raise ValueError("a report-line field may not contain '@'")
    return SEPARATOR.join(fields)


def split_terminal_info(plaintext: bytes) -> tuple[Layout, list[str]]:
    """Decode UTF-8, pick the layout from the type code, and check the field count."""
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise TerminalInfoError("E304", "terminal information is not UTF-8") from None
    parts = text.split(SEPARATOR)
    code = parts[0].strip()
    layout = layouts().get(int(code)) if code.isascii() and code.isdigit() and len(code) < 4 else None
    if layout is None:
        raise TerminalInfoError("E301", "unknown terminal type code")
    if len(parts) != len(layout.fields):
        raise TerminalInfoError(
            "E302",
            f"terminal type {layout.code} has {len(parts)} fields, expected {len(layout.fields)}",
        )
    return layout, parts


def build_terminal_info(type_code: int, values: Mapping[str, str], collect_flags: int) -> bytes:
    """Lay out `values` (field name → text, missing names empty) in the layout's order."""
    layout = layouts()[type_code]
    unknown = set(values) - set(layout.fields)
    if unknown:
        raise ValueError(f"fields not in layout {type_code}: {sorted(unknown)}")
    out = []
    for name in layout.fields:
        if name == "type":
            value = str(type_code)
        elif name == "collect_flags":
            value = str(collect_flags)
        else:
            value = values.get(name, "")
        if SEPARATOR in value:
            raise ValueError(f"terminal field {name} may not contain '@'")
        out.append(value)
    return SEPARATOR.join(out).encode("utf-8")
