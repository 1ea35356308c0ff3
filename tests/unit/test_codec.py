"""Report line (profile §3) and terminal information (§5): round trips, the sealed path, edge cases.

Expected values are written from the profile: field orders are hand-copied tables (conftest
SPEC_LAYOUTS), times are converted with `calendar.timegm`, IPv6 text with a small RFC 5952
formatter written here, MACs from the bytes they were rendered from.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import itertools
import string
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.codec import (
    ReportLine,
    _base64,
    build_report_line,
    build_terminal_info,
    check_identifier,
    parse_report_line,
    split_terminal_info,
)
from pipeline.crypto.suites import Suite
from pipeline.errors import DecryptError, EnvelopeError
from pipeline.stages.decode import check_envelope

ID_ALPHABET = string.ascii_letters + string.digits + "_.-"
FREE_ASCII = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="@"), max_size=40
)
KINDS = {1: "WINDOWS", 2: "LINUX", 3: "MACOS", 4: "ANDROID", 5: "IOS", 6: "HARMONYOS", 7: "OTHER"}
SUITE_BYTE = {Suite.RSA: 0x01, Suite.X25519: 0x02, Suite.SM4: 0x03}  # profile §4 table


def ids(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=ID_ALPHABET, min_size=1, max_size=max_size)


def rfc5952(groups: list[int]) -> str:
    """RFC 5952 §4: lower case, no leading zeros, the longest (leftmost) run of ≥ 2 zero groups as '::'."""
    best_start, best_len, i = -1, 0, 0
    while i < 8:
        if groups[i] == 0:
            j = i
            while j < 8 and groups[j] == 0:
                j += 1
            if j - i > best_len and j - i >= 2:
                best_start, best_len = i, j - i
            i = j
        else:
            i += 1
    text = [f"{g:x}" for g in groups]
    if best_start < 0:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_len :])


def test_rfc5952_helper_matches_the_rfc_examples() -> None:
    # RFC 5952 §4.2.1-§4.2.3 examples, so the helper itself is checked against the RFC.
    assert rfc5952([0x2001, 0xDB8, 0, 0, 0, 0, 2, 1]) == "2001:db8::2:1"
    assert rfc5952([0x2001, 0xDB8, 0, 1, 1, 1, 1, 1]) == "2001:db8:0:1:1:1:1:1"
    assert rfc5952([0x2001, 0, 0, 1, 0, 0, 0, 1]) == "2001:0:0:1::1"
    assert rfc5952([0x2001, 0xDB8, 0, 0, 1, 0, 0, 1]) == "2001:db8::1:0:0:1"
    assert rfc5952([0] * 8) == "::"


# --- report line round trip ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    vendor=ids(21),
    version=st.integers(1, 999_999_999),
    blob=st.binary(min_size=1, max_size=1500),
    app_type=st.sampled_from([1, 2, 3, 4]),
    public_ip=FREE_ASCII,
    port=FREE_ASCII,
    login=FREE_ASCII,
    app=ids(32),
    relay=st.one_of(st.just(""), ids(32)),
)
def test_report_line_round_trip(
    vendor: str, version: int, blob: bytes, app_type: int, public_ip: str, port: str, login: str, app: str, relay: str
) -> None:
    assume(relay != app)
    line = build_report_line(
        vendor_id=vendor, key_version=version, terminal_info=blob, app_type=app_type, public_ip=public_ip,
        public_port=port, login_time=login, app_id=app, relay_app_id=relay,
    )  # fmt: skip
    # Profile §3 order: vendor @ key_version @ terminal_info @ app_type @ ip @ port @ login @ app @ relay.
    assert line == "@".join(
        [vendor, str(version), base64.b64encode(blob).decode(), str(app_type), public_ip, port, login, app, relay]
    )
    parsed = parse_report_line(line)
    assert parsed == ReportLine(vendor, version, blob, app_type, public_ip, port, login, app, relay)
    assert parsed.associated_data == f"{vendor}@{version}".encode()


def test_build_report_line_refuses_a_separator_inside_a_field() -> None:
    with pytest.raises(ValueError):
        build_report_line(vendor_id="CTP", key_version=1, terminal_info=b"\x02", app_type=1, public_ip="1.2.3.4",
                          public_port=1, login_time="09:00:00", app_id="A@B")  # fmt: skip


# --- terminal information round trip, every layout -------------------------------------------

FIELD_TEXT = st.text(alphabet=st.characters(exclude_characters="@", exclude_categories=("Cs",)), max_size=20)


@pytest.mark.parametrize("code", range(1, 8))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_terminal_info_round_trip(kit: Any, code: int, data: st.DataObject) -> None:
    names = kit.spec_layouts[code][1:-1]
    values = {name: data.draw(FIELD_TEXT, label=name) for name in names}
    flags = data.draw(st.integers(0, 2**31 - 1), label="flags")
    built = build_terminal_info(code, values, flags)
    expected = [str(code), *(values[name] for name in names), str(flags)]
    assert built == "@".join(expected).encode("utf-8")
    layout, parts = split_terminal_info(built)
    assert layout.code == code
    assert layout.kind == KINDS[code]
    assert layout.fields == kit.spec_layouts[code]
    assert parts == expected


@pytest.mark.parametrize("code", range(1, 8))
def test_build_terminal_info_leaves_missing_fields_empty(kit: Any, code: int) -> None:
    empties = [""] * (len(kit.spec_layouts[code]) - 2)
    assert build_terminal_info(code, {}, 3) == "@".join([str(code), *empties, "3"]).encode()


def test_build_terminal_info_refuses_unknown_fields_and_separators() -> None:
    with pytest.raises(ValueError):
        build_terminal_info(4, {"disk_serial": "X"}, 0)  # a PC field in the Android layout
    with pytest.raises(ValueError):
        build_terminal_info(1, {"device_name": "A@B"}, 0)


# --- the sealed path: build, encrypt, parse, decrypt, normalize ---------------------------------

HEX_GROUP = st.one_of(st.just(0), st.integers(0, 0xFFFF))
TEXT_CORE = st.text(alphabet=string.ascii_letters + string.digits + " -_.:^()" + "中文设备", min_size=1, max_size=60)


def _hex32(groups: list[int], upper: bool) -> str:
    text = "".join(f"{g:04x}" for g in groups)
    return text.upper() if upper else text


def _mac_text(raw: bytes, separator: str, upper: bool) -> str:
    text = separator.join(f"{b:02x}" for b in raw)
    return text.upper() if upper else text


def _cst_ms(moment: datetime) -> int:
    return (calendar.timegm(moment.timetuple()) - 8 * 3600) * 1000


@st.composite
def planted(draw: st.DrawFn, layout_fields: tuple[str, ...]) -> dict[str, Any]:
    """Raw values for a layout's fields in assorted reporter forms, and what normalize must return."""
    names = set(layout_fields)
    raw: dict[str, str] = {}
    want: dict[str, Any] = {"private_ips": [], "macs": []}
    collect = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 30))).replace(microsecond=0)
    raw["collect_time"] = collect.strftime("%Y-%m-%d %H:%M:%S")
    want["collect_time"] = _cst_ms(collect)
    skew = draw(st.integers(-300, 300))
    want["login_time"] = want["collect_time"] + skew * 1000
    want["login_text"] = (collect + timedelta(seconds=skew)).strftime("%Y-%m-%d %H:%M:%S")
    for slot in ("private_ip1", "private_ip", "private_ip2"):
        if slot not in names:
            continue
        if slot == "private_ip2":
            octets = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
            raw[slot] = ".".join(map(str, octets))
            want["private_ips"].append(raw[slot])
        else:
            groups = [draw(st.integers(1, 0xFFFF)), *draw(st.lists(HEX_GROUP, min_size=7, max_size=7))]
            raw[slot] = _hex32(groups, draw(st.booleans()))
            want["private_ips"].append(rfc5952(groups))
    for slot in ("mac1", "mac", "mac2"):
        if slot not in names:
            continue
        mac = draw(st.binary(min_size=6, max_size=6).filter(lambda b: b.hex().upper() not in SPECIAL_MACS))
        raw[slot] = _mac_text(mac, draw(st.sampled_from(["-", ":", ""])), draw(st.booleans()))
        want["macs"].append(mac.hex().upper())
    for name in names - set(raw) - {"location", "cpu_serial"}:
        core = draw(TEXT_CORE.filter(lambda t: t == t.strip()))
        raw[name] = " " * draw(st.integers(0, 2)) + core + " " * draw(st.integers(0, 2))
        want[name] = core
    if "cpu_serial" in names:
        cpu = draw(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=64))
        raw["cpu_serial"] = cpu
        want["cpu_serial"] = cpu.upper()
    if "location" in names:
        lat = draw(st.integers(-9_000_000, 9_000_000))
        lon = draw(st.integers(-18_000_000, 18_000_000))
        raw["location"] = f"{_decimal(lat)},{_decimal(lon)}"
        want["latitude"], want["longitude"] = lat / 100_000, lon / 100_000
    public = [0x2400, *draw(st.lists(HEX_GROUP, min_size=7, max_size=7))]
    want["public_raw"] = _hex32(public, draw(st.booleans()))
    want["public_ip"] = rfc5952(public)
    want["port"] = draw(st.integers(0, 65535))
    return {"raw": raw, "want": want}


SPECIAL_MACS = {"000000000000", "FFFFFFFFFFFF", "020000000000"}
ADDRESS_SLOTS = {"private_ip1", "private_ip2", "private_ip", "mac1", "mac2", "mac"}


def _decimal(e5: int) -> str:
    sign = "-" if e5 < 0 else ""
    return f"{sign}{abs(e5) // 100_000}.{abs(e5) % 100_000:05d}"


@pytest.mark.parametrize("suite", [Suite.RSA, Suite.X25519, Suite.SM4])
@pytest.mark.parametrize("code", range(1, 8))
def test_sealed_report_normalizes_to_the_planted_values(kit: Any, suite: Suite, code: int) -> None:
    layout_fields = kit.spec_layouts[code][1:-1]

    @settings(max_examples=3 if suite is Suite.RSA else 10, deadline=None)
    @given(case=planted(layout_fields))
    def check(case: dict[str, Any]) -> None:
        raw, want = case["raw"], case["want"]
        plaintext = kit.plaintext(code, **raw)
        version, blob = kit.seal(plaintext, suite)
        assert blob[0] == SUITE_BYTE[suite]
        text = build_report_line(
            vendor_id=kit.vendor_id, key_version=version, terminal_info=blob, app_type=1,
            public_ip=want["public_raw"], public_port=want["port"], login_time=want["login_text"], app_id=kit.app_id,
        )  # fmt: skip
        line = parse_report_line(text)
        opened = kit.keyring.decrypt(line.vendor_id, line.key_version, line.terminal_info, 1_763_600_405_000)
        assert opened == plaintext
        record = kit.normalize(opened, line=line, envelope=kit.envelope(report=text))
        assert record["terminal_type"] == code
        assert record["terminal_kind"] == KINDS[code]
        assert record["key_version"] == version
        assert record["public_ip"] == want["public_ip"]
        assert record["public_port"] == want["port"]
        assert record["login_time"] == want["login_time"]
        assert record["collect_time"] == want["collect_time"]
        assert record["private_ips"] == want["private_ips"]
        assert record["macs"] == want["macs"]
        assert record["collect_flags"] == 0
        for name in set(layout_fields) - {"collect_time", "location"} - ADDRESS_SLOTS:
            assert record[name] == want[name], name
        if "location" in raw:
            assert (record["latitude"], record["longitude"]) == (want["latitude"], want["longitude"])
        else:
            assert record["latitude"] is None and record["longitude"] is None
        assert record["warnings"] == []
        assert record["flags"] == []

    check()


@pytest.mark.parametrize("suite", [Suite.RSA, Suite.X25519, Suite.SM4])
def test_sealed_blob_is_bound_to_vendor_and_key_version(kit: Any, suite: Suite) -> None:
    plaintext = kit.plaintext(1)
    version, blob = kit.seal(plaintext, suite)
    assert kit.keyring.decrypt(kit.vendor_id, version, blob) == plaintext
    with pytest.raises(DecryptError) as moved:
        kit.keyring.decrypt("ESUNNY", version, blob)
    assert moved.value.code == "E204"


# --- report line edge cases -------------------------------------------------------------------

BLOB_TEXT = base64.b64encode(b"\x02" + bytes(range(60))).decode()
VALID = {
    "vendor_id": "CTP", "key_version": "2", "terminal_info": BLOB_TEXT, "app_type": "1", "public_ip": "58.20.30.40",
    "public_port": "51234", "login_time": "2025-11-20 09:00:00", "app_id": "CT_Q7_V1.0.0", "relay_app_id": "",
}  # fmt: skip


def line_with(**over: str) -> str:
    fields = dict(VALID, **over)
    return "@".join(fields[name] for name in VALID)


def code_of(line: str) -> str:
    with pytest.raises(EnvelopeError) as caught:
        parse_report_line(line)
    return caught.value.code


def test_valid_line_parses() -> None:
    parsed = parse_report_line(line_with())
    assert parsed.vendor_id == "CTP" and parsed.key_version == 2
    assert parsed.terminal_info == b"\x02" + bytes(range(60))
    assert parsed.relay_app_id == ""


@pytest.mark.parametrize(
    "line",
    [
        line_with().rsplit("@", 1)[0],  # 8 fields
        line_with() + "@extra",  # 10 fields
        line_with(public_ip="2400@8888::1"),  # 10 fields, '@' inside a field
        "CTP",  # 1 field
        "",
        "@" * 7,
        "@" * 9,
    ],
)
def test_wrong_field_count_is_e103(line: str) -> None:
    assert code_of(line) == "E103"


def test_exactly_nine_empty_fields_is_not_e103() -> None:
    assert code_of("@" * 8) == "E104"  # nine fields, but the vendor ID is empty


@pytest.mark.parametrize(
    "over",
    [
        {"vendor_id": "V" * 22},
        {"vendor_id": ""},
        {"vendor_id": "CT P"},
        {"vendor_id": "CT#P"},
        {"vendor_id": "上期"},
        {"app_id": "A" * 33},
        {"app_id": ""},
        {"app_id": "XY Q7 V1.0"},
        {"app_id": "XY/Q7"},
        {"app_type": "2", "relay_app_id": "R" * 33},
        {"app_type": "2", "relay_app_id": "R+1"},
        {"app_type": "2", "relay_app_id": "CT_Q7_V1.0.0"},  # equal to app_id
        {"public_ip": "５８.20.30.40"},  # non-ASCII anywhere in the line
        {"login_time": "2025-11-20 09:00:00\u00a0"},
        {"terminal_info": ""},
        {"terminal_info": "QUJ"},  # unpadded
        {"terminal_info": "QU=D"},
        {"terminal_info": "QUJD!"},
        {"terminal_info": "-_-_"},  # URL-safe alphabet
        {"terminal_info": "QUJD QUJD"},
        {"key_version": "0"},
        {"key_version": "00"},
        {"key_version": "-1"},
        {"key_version": "abc"},
        {"key_version": "1.5"},
        {"key_version": ""},
        {"key_version": " 1"},
        {"key_version": "1e3"},
        {"key_version": "99999999999"},
        {"app_type": "0"},
        {"app_type": "5"},
        {"app_type": ""},
        {"app_type": "x"},
    ],
)
def test_bad_fields_are_e104(over: dict[str, str]) -> None:
    assert code_of(line_with(**over)) == "E104"


@pytest.mark.parametrize(
    "over",
    [
        {"vendor_id": "V" * 21},
        {"app_id": "A" * 32},
        {"app_type": "2", "relay_app_id": "R" * 32},
        {"vendor_id": "a.b-c_D9"},
    ],
)
def test_limits_are_inclusive(over: dict[str, str]) -> None:
    parse_report_line(line_with(**over))


def test_line_of_4096_bytes_is_accepted_and_4097_rejected() -> None:
    base = line_with(public_ip="")
    pad = 4096 - len(base)
    assert pad > 0
    assert parse_report_line(line_with(public_ip="x" * pad)).public_ip == "x" * pad
    assert len(line_with(public_ip="x" * (pad + 1))) == 4097
    assert code_of(line_with(public_ip="x" * (pad + 1))) == "E104"


@pytest.mark.parametrize("field", ["vendor_id", "app_id", "relay_app_id"])
def test_trailing_newline_in_an_identifier_is_e104(field: str) -> None:
    # Profile §1: identifiers use [A-Za-z0-9_.-] only; '\n' is not among them.
    over = {field: VALID[field] + "\n" if VALID[field] else "CT_RELAY_V1.0.0\n"}
    if field == "relay_app_id":
        over["app_type"] = "2"
    assert code_of(line_with(**over)) == "E104"


@pytest.mark.parametrize("value", ["CTP\n", "CTP\r", "CTP ", "C\x00P"])
def test_check_identifier_rejects_characters_outside_the_charset(value: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        check_identifier("vendor_id", value)
    assert caught.value.code == "E104"


@pytest.mark.parametrize("field", ["report_id", "reporter_id", "broker_id", "investor_id", "user_id"])
def test_envelope_identifier_with_trailing_newline_is_e104(kit: Any, field: str) -> None:
    envelope = kit.envelope(report="x")
    envelope[field] = envelope[field][:5] + "\n"
    with pytest.raises(EnvelopeError) as caught:
        check_envelope(envelope, envelope["reporter_id"])
    assert caught.value.code == "E104"


# --- the quick Base64 path accepts exactly what base64.b64decode(validate=True) accepts ------------------


def b64_reference(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def b64_quick(text: str) -> bytes | None:
    try:
        return _base64(text)
    except (binascii.Error, ValueError):
        return None


def test_base64_every_short_string() -> None:
    alphabet = "AB/+=a\n."
    for length in range(6):
        for chars in itertools.product(alphabet, repeat=length):
            text = "".join(chars)
            assert b64_quick(text) == b64_reference(text), text


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()), st.integers(0, 90),
       st.sampled_from(["", "=", "==", "A", "\n", " ", "-", "_", "*"]), st.booleans())  # fmt: skip
def test_base64_mutated_blobs(text: str, at: int, noise: str, replace: bool) -> None:
    mutated = text[:at] + noise + text[at + (1 if replace else 0) :]
    assert b64_quick(mutated) == b64_reference(mutated)
