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
from datetime import date, timedelta, timezone

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
# The definition of a MAC; normalize_mac tests the same more quickly (tests/unit/test_fields.py).
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


# For ASCII text, exactly the texts _IPV4 accepts with every octet at most 255, in one regex call.
# (_IPV4's \d also takes other Unicode digits, which int() reads; non-ASCII text keeps that path.)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4_ASCII = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


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


def _is_ipv4(text: str) -> bool:
    """``_ipv4_value(text) is not None``, without building the integer (one regex call for ASCII)."""
    if text.isascii():
        return _IPV4_ASCII.fullmatch(text) is not None
    return _ipv4_value(text) is not None


def ipv4_is_global(value: int) -> bool:
    index = bisect.bisect_right(_NON_GLOBAL_STARTS, value) - 1
    return index < 0 or value > _NON_GLOBAL_V4[index][1]


# Public IPs travel in clear in the report line and repeat across a reporter's reports; a bounded
# memo of the pure result saves the regex, the octet loop and the bisect (~1.5 µs) on a repeat.
_PUBLIC_IPS: dict[str, tuple[str, bool]] = {}
_MEMO_LIMIT = 65_536


def normalize_public_ip(field: str, text: str) -> tuple[str, bool]:
    """(RFC 5952 text, is globally routable) of a public IP; the IPv4 path avoids `ipaddress`."""
    known = _PUBLIC_IPS.get(text)
    if known is not None:
        return known
    value = _ipv4_value(text)
    if value is not None:
        result = text, ipv4_is_global(value)
    else:
        address = parse_ip(field, text)
        result = address.compressed, address.is_global
    if len(_PUBLIC_IPS) >= _MEMO_LIMIT:
        _PUBLIC_IPS.clear()
    _PUBLIC_IPS[text] = result
    return result


def _bad(field: str, what: str) -> TerminalInfoError:
    return TerminalInfoError("E303", f"{field} is not {what}")


# Times are computed from memoized parts instead of datetime.fromisoformat + replace + timestamp
# (~2.5 µs; two per report): the epoch ms of each valid `YYYY-MM-DD HH:MM` seen (bounded memo; a
# hit skips the regex too) plus the seconds, and the ms of each `HH:MM` (at most 10^4 keys). Equal
# to the datetime result for every input: tests/unit/test_fields.py compares them over all times of
# day and a range of dates.
# The memos are cleared in place, never rebound: normalize's generated per-layout code holds them.
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MINUTE_STARTS: dict[str, int] = {}
_MINUTES: dict[str, int | None] = {}
_SECONDS = {f"{second:02d}": second * 1000 for second in range(60)}


def _minute_ms(hh_mm: str) -> int | None:
    """Milliseconds of `HH:MM` (ASCII digits) since midnight, None if not a valid hour and minute."""
    try:
        return _MINUTES[hh_mm]
    except KeyError:
        pass
    hours, minutes = int(hh_mm[0:2]), int(hh_mm[3:5])
    value = None if hours > 23 or minutes > 59 else (hours * 60 + minutes) * 60_000
    _MINUTES[hh_mm] = value
    return value


def china_datetime_ms(field: str, text: str) -> int:
    """`YYYY-MM-DD HH:MM:SS` in China Standard Time → UTC epoch milliseconds."""
    if len(text) == 19 and text[16] == ":":
        # A minute already validated, and valid seconds: the text is valid as a whole.
        start = _MINUTE_STARTS.get(text[:16])
        second = _SECONDS.get(text[17:])
        if start is not None and second is not None:
            return start + second
    if not _DATETIME.fullmatch(text):
        raise _bad(field, "a YYYY-MM-DD HH:MM:SS time")
    try:
        ordinal = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal()
    except ValueError:
        raise _bad(field, "a valid calendar time") from None
    minute = _minute_ms(text[11:16])
    second = _SECONDS.get(text[17:])
    if minute is None or second is None:
        raise _bad(field, "a valid calendar time")
    start = (ordinal - _EPOCH_ORDINAL) * _DAY_MS - _CST_OFFSET_MS + minute
    if len(_MINUTE_STARTS) >= _MEMO_LIMIT:
        _MINUTE_STARTS.clear()
    _MINUTE_STARTS[text[:16]] = start
    return start + second


def china_time_of_day_ms(field: str, text: str) -> int:
    """`HH:MM:SS` → milliseconds since China midnight."""
    if not _TIME.fullmatch(text):
        raise _bad(field, "a HH:MM:SS time")
    minute = _minute_ms(text[0:5])
    seconds = int(text[6:8])
    if minute is None or seconds > 59:
        raise _bad(field, "a valid time of day")
    return minute + seconds * 1000


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
    if _is_ipv4(text):
        return text
    return parse_ip(field, text).compressed


# _MAC without its backreference, one pattern per form (the backreference costs ~0.1 µs a MAC).
_MAC_PLAIN = re.compile(r"[0-9A-Fa-f]{12}")
_MAC_BY_SEPARATOR = {sep: re.compile(rf"[0-9A-Fa-f]{{2}}(?:{sep}[0-9A-Fa-f]{{2}}){{5}}") for sep in "-:"}


def normalize_mac(field: str, text: str) -> str:
    """12 hex digits with `-`, `:` or no separators → upper case, no separators."""
    if len(text) == 12:
        if _MAC_PLAIN.fullmatch(text):
            return text.upper()
    elif len(text) == 17:
        separator = text[2]
        pattern = _MAC_BY_SEPARATOR.get(separator)
        if pattern is not None and pattern.fullmatch(text):
            return text.replace(separator, "").upper()
    raise _bad(field, "a MAC address of 12 hex digits")


def clean_text(field: str, text: str, max_length: int) -> str:
    """Trim and drop control characters; longer than `max_length` raises E104."""
    cleaned = _CONTROL.sub("", text).strip() if not text.isprintable() else text.strip()
    if len(cleaned) > max_length:
        raise TerminalInfoError("E104", f"{field} longer than {max_length} characters")
    return cleaned


def parse_location(field: str, text: str) -> tuple[float, float, bool]:
    """`latitude,longitude` in decimal degrees → (lat, lon, in_range)."""
    parts = text.split(",")
    if len(parts) != 2 or not _DEGREES.fullmatch(parts[0].strip()) or not _DEGREES.fullmatch(parts[1].strip()):
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
    if len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        if port <= 65535:
            return port
    raise _bad(field, "a port number 0-65535")
