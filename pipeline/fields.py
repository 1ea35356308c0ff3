"""Normalizers for single fields (profile §3, §5): times, IPs, MACs, text, locations.

Each takes the raw text and returns the normalized value or raises `TerminalInfoError`
(E303 for formats, E104 for over-long text). Messages name the field, never its value,
because the values are decrypted identifiers.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from datetime import datetime, timedelta, timezone

from pipeline.errors import TerminalInfoError

CHINA_TZ = timezone(timedelta(hours=8), "CST")
_DAY_MS = 86_400_000
_CST_OFFSET_MS = 8 * 3_600_000

_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")
_DEGREES = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]+)?")
# Instants an Avro timestamp-millis and Python's datetime can both hold (years 1-9999, China time).
_MIN_MS, _MAX_MS = -62_135_625_600_000, 253_402_271_999_000
_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([-:]?)[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_IPV4 = re.compile(r"(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})")

# IPv4 blocks that are not globally routable (IANA special-purpose registry, as `ipaddress`
# uses), as sorted (first, last) integers so the hot path needs one bisect, not 17 `in` tests.
_NON_GLOBAL_V4 = sorted(
    (int(net.network_address), int(net.broadcast_address))
    for net in map(ipaddress.IPv4Network, (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    ))
)  # fmt: skip
_NON_GLOBAL_STARTS = [first for first, _ in _NON_GLOBAL_V4]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ipv4_value(text: str) -> int | None:
    """The address as an integer for canonical dotted IPv4 text, else None."""
    match = _IPV4.fullmatch(text)
    if match is None:
        return None
    value = 0
    for octet in match.groups():
        number = int(octet)
        if number > 255:
            return None
        value = value << 8 | number
    return value


def ipv4_is_global(value: int) -> bool:
    index = bisect.bisect_right(_NON_GLOBAL_STARTS, value) - 1
    return index < 0 or value > _NON_GLOBAL_V4[index][1]


def normalize_public_ip(field: str, text: str) -> tuple[str, bool]:
    """(RFC 5952 text, is globally routable) of a public IP; the IPv4 path avoids `ipaddress`."""
    value = _ipv4_value(text)
    if value is not None:
        return text, ipv4_is_global(value)
    address = parse_ip(field, text)
    return address.compressed, address.is_global


def _bad(field: str, what: str) -> TerminalInfoError:
    return TerminalInfoError("E303", f"{field} is not {what}")


def china_datetime_ms(field: str, text: str) -> int:
    """`YYYY-MM-DD HH:MM:SS` in China Standard Time → UTC epoch milliseconds."""
    if not _DATETIME.fullmatch(text):
        raise _bad(field, "a YYYY-MM-DD HH:MM:SS time")
    try:
        moment = datetime.fromisoformat(text).replace(tzinfo=CHINA_TZ)
    except ValueError:
        raise _bad(field, "a valid calendar time") from None
    return int(moment.timestamp()) * 1000


def china_time_of_day_ms(field: str, text: str) -> int:
    """`HH:MM:SS` → milliseconds since China midnight."""
    if not _TIME.fullmatch(text):
        raise _bad(field, "a HH:MM:SS time")
    hours, minutes, seconds = int(text[0:2]), int(text[3:5]), int(text[6:8])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise _bad(field, "a valid time of day")
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


def infer_login_ms(field: str, text: str, received_at_ms: int, tolerance_ms: int) -> int:
    """Date a bare `HH:MM:SS` from `received_at`: the latest such moment not after it (+tolerance)."""
    time_of_day = china_time_of_day_ms(field, text)
    china_midnight = (received_at_ms + _CST_OFFSET_MS) // _DAY_MS * _DAY_MS - _CST_OFFSET_MS
    moment = china_midnight + time_of_day
    if moment > received_at_ms + tolerance_ms:
        moment -= _DAY_MS  # logged in before midnight, reported after it
    if not _MIN_MS <= moment <= _MAX_MS:
        raise _bad(field, "a time that can be dated from received_at")
    return moment


def parse_ip(field: str, text: str) -> IPAddress:
    """IPv4 dotted, IPv6 text, or CTP's 32 hex digits without colons."""
    try:
        if _HEX32.fullmatch(text):
            return ipaddress.IPv6Address(int(text, 16))
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _bad(field, "an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise _bad(field, "an address without a zone")
    return address


def normalize_ip(field: str, text: str) -> str:
    """RFC 5952 text of the address (IPv4 stays dotted)."""
    if _ipv4_value(text) is not None:
        return text
    return parse_ip(field, text).compressed


def normalize_mac(field: str, text: str) -> str:
    """12 hex digits with `-`, `:` or no separators → upper case, no separators."""
    if not _MAC.fullmatch(text):
        raise _bad(field, "a MAC address of 12 hex digits")
    return text.replace("-", "").replace(":", "").upper()


def clean_text(field: str, text: str, max_length: int) -> str:
    """Trim and drop control characters; longer than `max_length` raises E104."""
    cleaned = _CONTROL.sub("", text).strip() if not text.isprintable() else text.strip()
    if len(cleaned) > max_length:
        raise TerminalInfoError("E104", f"{field} longer than {max_length} characters")
    return cleaned


def parse_location(field: str, text: str) -> tuple[float, float, bool]:
    """`latitude,longitude` in decimal degrees → (lat, lon, in_range)."""
    parts = text.split(",")
    if len(parts) != 2 or not all(_DEGREES.fullmatch(part.strip()) for part in parts):
        raise _bad(field, "a latitude,longitude pair")
    try:
        latitude, longitude = float(parts[0]), float(parts[1])
    except ValueError:
        raise _bad(field, "a latitude,longitude pair") from None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise _bad(field, "a finite latitude,longitude pair")
    in_range = -90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0
    return latitude, longitude, in_range


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty run of 0-9 (str.isdigit alone also accepts '²' and friends)."""
    return text.isascii() and text.isdigit()


def parse_port(field: str, text: str) -> int:
    if not is_ascii_digits(text) or len(text) > 5 or int(text) > 65535:
        raise _bad(field, "a port number 0-65535")
    return int(text)
