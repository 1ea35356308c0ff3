"""Single-field normalizers (profile §3, §5): times, IPs, MACs, text, locations, ports.

Expected epoch values were computed with `date -u -d "<UTC time>" +%s`; China Standard Time
is UTC+8 all year (no daylight saving).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import fields
from pipeline.errors import TerminalInfoError

HOUR = 3_600_000
DAY = 24 * HOUR


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(TerminalInfoError) as caught:
        call(*args)
    return caught.value.code


# --- times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01 08:00:00", 0),
        ("2025-11-20 09:00:00", 1_763_600_400_000),  # 2025-11-20 01:00:00 UTC
        ("2024-02-29 00:00:00", 1_709_136_000_000),  # leap day; 2024-02-28 16:00:00 UTC
        ("2025-01-02 00:00:00", 1_735_747_200_000),  # 2025-01-01 16:00:00 UTC
        ("2025-01-01 23:59:59", 1_735_747_199_000),
    ],
)
def test_china_datetime_to_utc_ms(text: str, expected: int) -> None:
    assert fields.china_datetime_ms("collect_time", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025-02-30 00:00:00",  # no such day
        "2025-02-29 00:00:00",  # not a leap year
        "1900-02-29 12:00:00",  # century, not a leap year
        "2025-13-01 00:00:00",
        "2025-00-10 00:00:00",
        "2025-04-31 00:00:00",
        "2025-11-20 24:00:00",
        "2025-11-20 23:60:00",
        "2025-11-20 23:59:60",
        "2025-11-20T09:00:00",
        "2025-11-20 9:00:00",
        "2025/11/20 09:00:00",
        "2025-11-20 09:00:00 ",
        " 2025-11-20 09:00:00",
        "2025-11-20 09:00:00.123",
        "2025-11-20 09:00:00+08:00",
        "2025-11-20",
        "09:00:00",
        "",
        "２０２５-11-20 09:00:00",  # full-width digits
    ],
)
def test_invalid_datetimes_are_e303(text: str) -> None:
    assert code_of(fields.china_datetime_ms, "collect_time", text) == "E303"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:00", 0),
        ("09:00:00", 9 * HOUR),
        ("23:59:59", DAY - 1000),
        ("12:34:56", (12 * 3600 + 34 * 60 + 56) * 1000),
    ],
)
def test_time_of_day(text: str, expected: int) -> None:
    assert fields.china_time_of_day_ms("login_time", text) == expected


@pytest.mark.parametrize("text", ["24:00:00", "12:60:00", "12:00:60", "9:00:00", "09:00", "09-00-00", "0９:00:00", ""])
def test_invalid_time_of_day_is_e303(text: str) -> None:
    assert code_of(fields.china_time_of_day_ms, "login_time", text) == "E303"


# received_at values: China midnight starting 2025-11-20 is 2025-11-19 16:00:00 UTC.
MIDNIGHT_1120 = 1_763_568_000_000
TOLERANCE = 5 * 60_000


@pytest.mark.parametrize(
    ("received_at", "text", "expected"),
    [
        # Same China day, earlier in the day.
        (MIDNIGHT_1120 + 10 * HOUR, "09:00:00", MIDNIGHT_1120 + 9 * HOUR),
        # Logged in before midnight, reported just after it: the previous China day.
        (MIDNIGHT_1120 + 60_000, "23:59:00", MIDNIGHT_1120 - 60_000),
        # A login slightly after received_at (reporter clock behind) stays on the same day within tolerance.
        (MIDNIGHT_1120 + 60_000, "00:03:00", MIDNIGHT_1120 + 3 * 60_000),
        (MIDNIGHT_1120 + 60_000, "00:06:00", MIDNIGHT_1120 + 6 * 60_000),  # exactly received_at + tolerance
        # Beyond the tolerance it must be yesterday's time.
        (MIDNIGHT_1120 + 60_000, "00:06:01", MIDNIGHT_1120 + 6 * 60_000 + 1000 - DAY),
        (MIDNIGHT_1120 + 10 * HOUR, "11:00:00", MIDNIGHT_1120 + 11 * HOUR - DAY),
        # received_at exactly at China midnight.
        (MIDNIGHT_1120, "00:00:00", MIDNIGHT_1120),
        (MIDNIGHT_1120, "23:59:59", MIDNIGHT_1120 - 1000),
        # UTC midnight is 08:00 in China: a received_at of 2025-11-20 00:30 UTC is 08:30 China time.
        (MIDNIGHT_1120 + 8 * HOUR + 30 * 60_000, "08:00:00", MIDNIGHT_1120 + 8 * HOUR),
    ],
)
def test_bare_login_time_is_dated_from_received_at(received_at: int, text: str, expected: int) -> None:
    assert fields.infer_login_ms("login_time", text, received_at, TOLERANCE) == expected


# --- IP addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("58.20.30.40", "58.20.30.40"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("2400:8888:0:0:0:0:0:1", "2400:8888::1"),
        ("2400:DB8:0000:0000:0001:0000:0000:0001", "2400:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("::1", "::1"),
        ("24008888000000000000000000000001", "2400:8888::1"),  # CTP's 32 hex digits
        ("FE800000000000000202B3FFFE1E8329", "fe80::202:b3ff:fe1e:8329"),
        ("00000000000000000000000000000000", "::"),
    ],
)
def test_ip_forms_normalize_to_rfc5952(text: str, expected: str) -> None:
    assert fields.normalize_ip("public_ip", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "fe80::1%eth0",  # zone IDs are not addresses
        "fe80::1%1",
        "058.20.30.40",  # leading zeros (octal ambiguity)
        "58.20.30.040",
        "58.20.30",
        "58.20.30.40.50",
        "256.1.1.1",
        "58.20.30.40 ",
        " 58.20.30.40",
        "2400:8888::1::2",
        "2400:8888:0:0:0:0:0:0:1",
        "2400888800000000000000000000001",  # 31 hex digits
        "240088880000000000000000000000011",  # 33 hex digits
        "2400888800000000000000000000000g",
        "58.20.30.40/32",
        "",
        "localhost",
    ],
)
def test_bad_ips_are_e303(text: str) -> None:
    assert code_of(fields.normalize_ip, "public_ip", text) == "E303"


# --- MAC addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "AA-BB-CC-DD-EE-FF",
        "aa-bb-cc-dd-ee-ff",
        "AA:BB:CC:DD:EE:FF",
        "aa:bb:cc:dd:ee:ff",
        "AABBCCDDEEFF",
        "aAbBcCdDeEfF",
    ],
)
def test_mac_forms_normalize(text: str) -> None:
    assert fields.normalize_mac("mac1", text) == "AABBCCDDEEFF"


@pytest.mark.parametrize(
    "text",
    [
        "AA-BB:CC-DD-EE-FF",  # mixed separators
        "AA:BB:CC:DD:EE-FF",
        "AABBCC-DDEEFF",
        "AABBCCDDEEF",  # 11 digits
        "AABBCCDDEEFF0",  # 13 digits
        "AA-BB-CC-DD-EE",
        "AA-BB-CC-DD-EE-FF-00",
        "AA-BB-CC-DD-EE-FG",
        "AABB.CCDD.EEFF",
        "AA BB CC DD EE FF",
        "AABBCCDDEEFF\n",
        "",
    ],
)
def test_bad_macs_are_e303(text: str) -> None:
    assert code_of(fields.normalize_mac, "mac1", text) == "E303"


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  DESKTOP-1  ", "DESKTOP-1"),
        ("a\x00b\x1fc\x7fd\x85e\x9f", "abcde"),  # C0, DEL and C1 controls removed
        ("\tWD-WX123\r\n", "WD-WX123"),
        ("联想 ThinkPad", "联想 ThinkPad"),
        ("", ""),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert fields.clean_text("device_name", text, 64) == expected


def test_text_limits_count_cleaned_characters() -> None:
    assert fields.clean_text("device_name", "x" * 64, 64) == "x" * 64
    assert fields.clean_text("device_name", "  " + "x" * 64 + "\x00\x01", 64) == "x" * 64
    assert fields.clean_text("system_disk_partition", "p" * 128, 128) == "p" * 128
    assert code_of(fields.clean_text, "device_name", "x" * 65, 64) == "E104"
    assert code_of(fields.clean_text, "system_disk_partition", "p" * 129, 128) == "E104"
    assert code_of(fields.clean_text, "device_name", "设" * 65, 64) == "E104"  # characters, not bytes


def test_text_limits_from_the_profile_through_normalize(kit: Any) -> None:
    # Profile §5: 64 characters for names, serials, versions; 128 for the partition information.
    assert kit.normalize(kit.plaintext(1, device_name="d" * 64))["device_name"] == "d" * 64
    assert kit.normalize(kit.plaintext(1, system_disk_partition="p" * 128))["system_disk_partition"] == "p" * 128
    for name in ("device_name", "os_version", "disk_serial", "cpu_serial", "bios_serial"):
        with pytest.raises(TerminalInfoError) as caught:
            kit.normalize(kit.plaintext(1, **{name: "s" * 65}))
        assert caught.value.code == "E104", name
    with pytest.raises(TerminalInfoError) as caught:
        kit.normalize(kit.plaintext(1, system_disk_partition="p" * 129))
    assert caught.value.code == "E104"
    for name in ("imei", "device_id", "phone"):
        with pytest.raises(TerminalInfoError) as caught:
            kit.normalize(kit.plaintext(4, **{name: "9" * 65}))
        assert caught.value.code == "E104", name


# --- location ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("31.2304,121.4737", (31.2304, 121.4737, True)),
        ("-90,-180", (-90.0, -180.0, True)),
        ("90,180", (90.0, 180.0, True)),
        ("90.00001,0", (90.00001, 0.0, False)),
        ("0,-180.5", (0.0, -180.5, False)),
        ("-91,0", (-91.0, 0.0, False)),
    ],
)
def test_location(text: str, expected: tuple[float, float, bool]) -> None:
    assert fields.parse_location("location", text) == expected


@pytest.mark.parametrize(
    "text", ["nan,0", "0,nan", "inf,0", "0,-inf", "Infinity,1", "1,2,3", "1", "", "abc,1", "1;2", "1,"]
)
def test_bad_locations_are_e303(text: str) -> None:
    assert code_of(fields.parse_location, "location", text) == "E303"


@pytest.mark.parametrize("text", ["1_0,2", "١٢,٣٤", "３１,１２１"])
def test_location_must_be_ascii_decimal_degrees(text: str) -> None:
    # Profile §5: decimal degrees. Python's float() also takes '1_0' and non-ASCII digits.
    assert code_of(fields.parse_location, "location", text) == "E303"


def test_out_of_range_location_is_flagged_not_fixed(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(4, location="95.5,200.25"))
    assert (record["latitude"], record["longitude"]) == (95.5, 200.25)
    assert "location_out_of_range" in record["flags"]
    assert record["warnings"] == []
    assert "location_out_of_range" not in kit.normalize(kit.plaintext(4, location="-90,180"))["flags"]


@pytest.mark.parametrize("location", ["nan,121.5", "31.2,inf", "-inf,0"])
def test_non_finite_location_in_a_report_is_e303(kit: Any, location: str) -> None:
    with pytest.raises(TerminalInfoError) as caught:
        kit.normalize(kit.plaintext(5, location=location))
    assert caught.value.code == "E303"


def test_location_values_are_finite_numbers(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(7))
    assert math.isclose(record["latitude"], 31.2304) and math.isclose(record["longitude"], 121.4737)


# --- ports --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("1", 1), ("51234", 51234), ("65535", 65535)])
def test_ports(text: str, expected: int) -> None:
    assert fields.parse_port("public_port", text) == expected


@pytest.mark.parametrize("text", ["65536", "99999", "100000", "-1", "+80", "", " 80", "80 ", "8o", "８０", "1.0"])
def test_bad_ports_are_e303(text: str) -> None:
    assert code_of(fields.parse_port, "public_port", text) == "E303"


# --- special MACs, flagged by normalize ------------------------------------------------------------


@pytest.mark.parametrize(
    ("mac", "flag"),
    [
        ("00-00-00-00-00-00", "mac_all_zero"),
        ("ff:ff:ff:ff:ff:ff", "mac_broadcast"),
        ("020000000000", "mac_placeholder"),
    ],
)
def test_special_macs_are_kept_and_flagged(kit: Any, mac: str, flag: str) -> None:
    record = kit.normalize(kit.plaintext(5, mac=mac))
    assert record["macs"] == [mac.replace("-", "").replace(":", "").upper()]
    assert record["flags"] == [flag]
    assert record["warnings"] == []


def test_ordinary_mac_is_not_flagged(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1, mac1="02-00-00-00-00-01", mac2="000000000001"))
    assert record["macs"] == ["020000000001", "000000000001"]
    assert record["flags"] == []


def test_special_mac_flag_is_given_once(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1, mac1="000000000000", mac2="00:00:00:00:00:00"))
    assert record["macs"] == ["000000000000", "000000000000"]
    assert record["flags"] == ["mac_all_zero"]


# --- the quick paths equal their definitions -----------------------------------------------------


def datetime_reference(text: str) -> int | str:
    """china_datetime_ms by datetime, as it was first written: epoch ms, or the E303 message."""
    if not fields._DATETIME.fullmatch(text):
        return "collect_time is not a YYYY-MM-DD HH:MM:SS time"
    try:
        moment = datetime.fromisoformat(text).replace(tzinfo=fields.CHINA_TZ)
    except ValueError:
        return "collect_time is not a valid calendar time"
    return int(moment.timestamp()) * 1000


def datetime_outcome(text: str) -> int | str:
    try:
        return fields.china_datetime_ms("collect_time", text)
    except TerminalInfoError as exc:
        assert exc.code == "E303"
        return exc.message


def test_every_time_of_day_matches_datetime() -> None:
    # All of 00:00:00-99:99:99 on a few days, twice each (first computed, then memoized).
    for day in ("2025-11-20", "0001-01-01", "9999-12-31", "2023-02-29"):
        for hh_mm in (f"{h:02d}:{m:02d}" for h in range(100) for m in range(100)):
            for second in ("00", "59", "60"):
                text = f"{day} {hh_mm}:{second}"
                assert datetime_outcome(text) == datetime_reference(text) == datetime_outcome(text), text


@settings(max_examples=300, deadline=None)
@given(st.datetimes(), st.sampled_from(["", "0", ":", " ", "x", "１"]), st.integers(0, 19))
def test_datetimes_match_datetime(moment: datetime, noise: str, at: int) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    for candidate in (text, text[:at] + noise + text[at + 1 :], text[:at] + noise + text[at:]):
        assert datetime_outcome(candidate) == datetime_reference(candidate) == datetime_outcome(candidate)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEFgG-:. ", max_size=18) | st.binary(min_size=6, max_size=6).map(
    lambda b: b.hex("-")) | st.binary(min_size=6, max_size=6).map(bytes.hex))  # fmt: skip
def test_mac_check_matches_its_regex(text: str) -> None:
    for candidate in (text, text.replace("-", ":"), text.upper()):
        if fields._MAC.fullmatch(candidate):
            assert fields.normalize_mac("mac", candidate) == candidate.replace("-", "").replace(":", "").upper()
        else:
            assert code_of(fields.normalize_mac, "mac", candidate) == "E303"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, 300).map(str) | st.sampled_from(["00", "01", "256", "999", "1000", "٣", "1٢3", ""]),
                min_size=3, max_size=5))  # fmt: skip
def test_ipv4_check_matches_the_octet_loop(octets: list[str]) -> None:
    text = ".".join(octets)
    assert fields._is_ipv4(text) == (fields._ipv4_value(text) is not None)
