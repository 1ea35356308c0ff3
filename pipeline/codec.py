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


# ReportLine(...) runs the frozen dataclass __init__: one object.__setattr__ per field (~0.9 µs).
# Setting the nine slots through their member descriptors builds the same object in ~0.5 µs. (Should
# ReportLine ever get a __post_init__ or defaults, parse_report_line must call ReportLine(...) again.)
(_set_vendor_id, _set_key_version, _set_terminal_info, _set_app_type, _set_public_ip, _set_public_port,
 _set_login_time, _set_app_id, _set_relay_app_id) = (
    getattr(ReportLine, name).__set__ for name in ReportLine.__slots__
)  # fmt: skip


def _new_report_line(
    vendor_id: str, key_version: int, terminal_info: bytes, app_type: int, public_ip: str, public_port: str,
    login_time: str, app_id: str, relay_app_id: str,
) -> ReportLine:  # fmt: skip
    """``ReportLine(...)`` with the same field order, without the frozen-dataclass __init__."""
    line = object.__new__(ReportLine)
    _set_vendor_id(line, vendor_id)
    _set_key_version(line, key_version)
    _set_terminal_info(line, terminal_info)
    _set_app_type(line, app_type)
    _set_public_ip(line, public_ip)
    _set_public_port(line, public_port)
    _set_login_time(line, login_time)
    _set_app_id(line, app_id)
    _set_relay_app_id(line, relay_app_id)
    return line


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
    if len(text) <= 9 and text.isdigit():
        value = int(text)
        if value > 0:
            return value
    raise EnvelopeError("E104", f"{name} is not a positive integer")


def _base64(blob: str) -> bytes:
    """``base64.b64decode(blob, validate=True)``: binascii.Error (or ValueError) if not padded standard Base64.

    Why: on Python 3.11+ that call is exactly ``binascii.a2b_base64(data, strict_mode=True)`` after
    turning a str into bytes; calling it directly, on the str, skips the wrapper (~0.1 µs).
    tests/unit/test_codec.py compares the two exhaustively on short strings.
    """
    return binascii.a2b_base64(blob, strict_mode=True)


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
    # The identifiers' characters all at once when they are non-empty (see Limits.ids_pattern); if
    # that fails or cannot be used, each check_identifier below runs in full, in the original order.
    max_length = lim.max_length
    joined = lim.ids_pattern
    ids_ok = bool(vendor_id and app_id and joined is not None and joined.fullmatch(vendor_id + app_id + relay))
    if not ids_ok or len(vendor_id) > max_length["vendor_id"]:
        check_identifier("vendor_id", vendor_id)
    version = _positive_int("key_version", key_version)
    if not blob:
        raise EnvelopeError("E104", "terminal_info is empty")
    try:
        terminal_info = _base64(blob)
    except (binascii.Error, ValueError):
        raise EnvelopeError("E104", "terminal_info is not padded standard Base64") from None
    app_type_value = int(app_type) if app_type.isdigit() else None
    if app_type_value not in lim.app_types:
        raise EnvelopeError("E104", "app_type is not one of the profile's app types")
    if not ids_ok or len(app_id) > max_length["app_id"]:
        check_identifier("app_id", app_id)
    if not ids_ok or (relay and len(relay) > max_length["relay_app_id"]):
        check_identifier("relay_app_id", relay, required=False)
    if relay == app_id:
        raise EnvelopeError("E104", "relay_app_id equals app_id; they must differ")
    return _new_report_line(
        vendor_id, version, terminal_info, app_type_value, public_ip, public_port, login_time, app_id, relay
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
