"""Normalize stage: warnings W404, W406, W407, W408, the normalization flags, and E301–E304.

Bit numbers are taken by hand from profile §5 (PC item bits of CTP; bit i = field i elsewhere).
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.errors import TerminalInfoError
from pipeline.stages.normalize import NormalizeSettings

# Profile §5, by hand.
WIN_IP, WIN_MAC, WIN_DEVICE_NAME, WIN_OS, WIN_PARTITION = 2, 3, 4, 5, 9
ANDROID_PHONE, ANDROID_LOCATION = 8, 9
IOS_PHONE = 7
OTHER_LOCATION = 6
MINUTE = 60_000


def warnings_of(record: dict[str, Any]) -> list[str]:
    return sorted(record["warnings"])


def reject_code(kit: Any, plaintext: bytes, **kw: Any) -> str:
    with pytest.raises(TerminalInfoError) as caught:
        kit.normalize(plaintext, **kw)
    return caught.value.code


@pytest.mark.parametrize("code", range(1, 8))
def test_complete_consistent_report_has_no_warning_or_flag(kit: Any, code: int) -> None:
    record = kit.normalize(kit.plaintext(code))
    assert record["warnings"] == []
    assert record["flags"] == []
    assert record["collect_time"] == 1_763_600_370_000  # 2025-11-20 08:59:30 China time
    assert record["login_time"] == 1_763_600_400_000


def test_envelope_and_line_fields_are_carried(kit: Any) -> None:
    envelope = kit.envelope(report_id="R-77", correction_of="R-76")
    record = kit.normalize(kit.plaintext(1), envelope=envelope)
    for name in ("report_id", "reporter_type", "reporter_id", "broker_id", "investor_id", "user_id", "trading_day"):
        assert record[name] == envelope[name]
    assert record["received_at"] == envelope["received_at"]
    assert record["correction_of"] == "R-76"
    assert record["relay_app_id"] is None  # empty relay → null
    assert record["vendor_id"] == "CTP" and record["app_id"] == "CT_Q7_V1.0.0" and record["app_type"] == 1
    assert record["public_ip"] == "58.20.30.40" and record["public_port"] == 51234
    assert record["private_ips"] == ["192.168.1.10", "10.0.0.7"]
    assert record["macs"] == ["AABBCCDDEE01", "AABBCCDDEE02"]
    assert record["cpu_serial"] == "BFEBFBFF000906EA"
    assert record["system_disk_partition"] == "C:^ABCD1234^NTFS^256G"
    assert record["imei"] is None and record["phone"] is None  # not in the Windows layout


# --- W404 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_type", "relay", "warned"),
    [
        (1, "", False),
        (1, "CT_RELAY_V1.0.0", True),  # relay ID on a direct report
        (2, "", True),  # relay type without relay ID
        (3, "", True),
        (2, "CT_RELAY_V1.0.0", False),
        (3, "CT_RELAYB_V1.0.0", False),
        (4, "", False),  # unknown type: neither direct nor relay
    ],
)
def test_w404_relay_consistency(kit: Any, app_type: int, relay: str, warned: bool) -> None:
    record = kit.normalize(kit.plaintext(1), line=kit.line(app_type=app_type, relay_app_id=relay))
    assert warnings_of(record) == (["W404"] if warned else [])


# --- W406 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "flags", "overrides", "warned"),
    [
        (1, 0, {"os_version": ""}, True),  # empty item without its bit
        (1, 1 << WIN_OS, {"os_version": ""}, False),  # empty item with its bit
        (1, 1 << WIN_OS, {}, True),  # bit set over a collected item
        (1, 1 << 10, {}, True),  # a bit no Windows item has
        (1, 1 << 30, {}, True),
        (1, 1 << 0, {}, True),  # the type is always there
        (1, 0, {"private_ip2": "", "mac2": ""}, False),  # second PC slots may be empty without a bit
        (1, 0, {"private_ip1": "", "private_ip2": ""}, True),  # no IP at all needs bit 2
        (1, 1 << WIN_IP, {"private_ip1": "", "private_ip2": ""}, False),
        (1, 1 << WIN_MAC, {"mac1": "", "mac2": ""}, False),
        (1, 1 << WIN_IP, {"private_ip2": ""}, True),  # one IP collected: bit 2 is wrong
        (1, 1 << WIN_PARTITION, {"system_disk_partition": ""}, False),
        (2, 1 << WIN_PARTITION, {}, True),  # Linux has no bit 9
        (1, 1 << WIN_DEVICE_NAME, {"device_name": "   "}, False),  # blank counts as empty
        (1, 1 << WIN_DEVICE_NAME, {"device_name": "\x01\x02"}, False),  # only control characters
        (1, 0, {"device_name": "\x01\x02"}, True),
        (1, (1 << WIN_OS) | (1 << WIN_DEVICE_NAME), {"os_version": "", "device_name": ""}, False),
        (4, 1 << ANDROID_PHONE, {"phone": ""}, False),
        (4, 1 << ANDROID_LOCATION, {"phone": ""}, True),  # the wrong bit
        (4, 1 << 10, {}, True),  # bit 10 is collect_flags itself: unknown
        (5, 1 << IOS_PHONE, {"phone": ""}, False),
        (5, 1 << ANDROID_PHONE, {"phone": ""}, True),
        (7, 1 << OTHER_LOCATION, {"location": ""}, False),
        (7, 0, {"location": ""}, True),
        (6, 0, {"mac": ""}, True),  # mobiles have a single MAC slot: not optional
    ],
)
def test_w406_collect_flags_consistency(
    kit: Any, code: int, flags: int, overrides: dict[str, str], warned: bool
) -> None:
    record = kit.normalize(kit.plaintext(code, flags, **overrides))
    assert warnings_of(record) == (["W406"] if warned else [])
    assert record["collect_flags"] == flags


def test_missing_items_are_empty_in_the_record(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1, 1 << WIN_OS | 1 << WIN_IP, os_version="", private_ip1="", private_ip2=""))
    assert record["os_version"] is None
    assert record["private_ips"] == []
    assert record["warnings"] == []
    location_missing = kit.normalize(kit.plaintext(7, 1 << OTHER_LOCATION, location=""))
    assert location_missing["latitude"] is None and location_missing["longitude"] is None


# --- W407 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("collect", "warned"),
    [
        ("2025-11-20 08:55:00", False),  # exactly 5 minutes before login: not more than 5 minutes
        ("2025-11-20 08:54:59", True),
        ("2025-11-20 09:05:00", False),
        ("2025-11-20 09:05:01", True),
        ("2025-11-19 09:00:00", True),
    ],
)
def test_w407_login_collection_skew(kit: Any, collect: str, warned: bool) -> None:
    record = kit.normalize(kit.plaintext(1, collect_time=collect))
    assert warnings_of(record) == (["W407"] if warned else [])


def test_w407_threshold_is_configuration(kit: Any) -> None:
    plaintext = kit.plaintext(1, collect_time="2025-11-20 08:50:00")  # 10 minutes before login
    assert warnings_of(kit.normalize(plaintext)) == ["W407"]
    assert warnings_of(kit.normalize(plaintext, skew_ms=10 * MINUTE)) == []
    assert warnings_of(kit.normalize(plaintext, skew_ms=10 * MINUTE - 1000)) == ["W407"]


def test_profile_default_skew_is_five_minutes() -> None:
    assert NormalizeSettings.from_profile().time_skew_ms == 5 * MINUTE


# --- W408 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_ip", "warned"),
    [
        ("10.1.2.3", True),
        ("172.16.5.4", True),
        ("192.168.0.1", True),
        ("127.0.0.1", True),
        ("169.254.1.1", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("::1", True),
        ("00000000000000000000000000000001", True),  # ::1 in CTP's form
        ("fc00::1", True),
        ("fd12:3456::1", True),
        ("FDFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF", True),
        ("fe80::1", True),
        ("58.20.30.40", False),
        ("8.8.8.8", False),
        ("2400:8888::1", False),
        ("24008888000000000000000000000001", False),
    ],
)
def test_w408_non_global_public_ip(kit: Any, public_ip: str, warned: bool) -> None:
    record = kit.normalize(kit.plaintext(1), line=kit.line(public_ip=public_ip))
    assert warnings_of(record) == (["W408"] if warned else [])


# --- login time and collection time flags -------------------------------------------------------


def test_bare_login_time_is_inferred_and_flagged(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1), line=kit.line(login_time="09:00:00"))
    assert record["login_time"] == 1_763_600_400_000
    assert record["flags"] == ["login_time_inferred"]
    assert record["warnings"] == []
    assert "login_time_inferred" not in kit.normalize(kit.plaintext(1))["flags"]


def test_bare_login_time_after_received_at_is_yesterday(kit: Any) -> None:
    # received 09:00:02 China time; "09:10:00" is beyond the 5-minute tolerance → 2025-11-19 09:10:00.
    record = kit.normalize(kit.plaintext(1), line=kit.line(login_time="09:10:00"))
    assert record["login_time"] == 1_763_600_400_000 + 10 * MINUTE - 86_400_000
    assert "W407" in record["warnings"]  # a day away from the collection time


def test_missing_collect_time_uses_the_login_time(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1, 1 << 1, collect_time="", device_name="PC-1"))
    assert record["collect_time"] == record["login_time"] == 1_763_600_400_000
    assert record["flags"] == ["collect_time_missing"]
    assert record["warnings"] == []
    unflagged = kit.normalize(kit.plaintext(1, 0, collect_time=""))
    assert unflagged["flags"] == ["collect_time_missing"]
    assert unflagged["warnings"] == ["W406"]


# --- rejects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_code", ["0", "8", "9", "", "abc", "１", "1000", "-1", "1.0", "+1"])
def test_unknown_terminal_type_is_e301(kit: Any, type_code: str) -> None:
    plaintext = type_code.encode() + kit.plaintext(1)[1:]
    assert reject_code(kit, plaintext) == "E301"


@pytest.mark.parametrize(
    "plaintext",
    [
        b"1",
        b"1@2025-11-20 08:59:30@0",
        "@".join(["1"] + ["x"] * 11).encode(),  # 12 fields for Windows
        "@".join(["1"] + ["x"] * 13).encode(),  # 14 fields
        "@".join(["7"] + ["x"] * 8).encode(),  # 9 fields for "other"
        "@".join(["4"] + ["x"] * 9).encode(),  # 10 fields for Android
    ],
)
def test_wrong_field_count_is_e302(kit: Any, plaintext: bytes) -> None:
    assert reject_code(kit, plaintext) == "E302"


def test_layout_of_another_type_is_e302(kit: Any) -> None:
    windows = kit.plaintext(1)
    assert reject_code(kit, b"2" + windows[1:]) == "E302"  # Linux has 12 fields, not 13
    assert reject_code(kit, b"5" + kit.plaintext(4)[1:]) == "E302"


@pytest.mark.parametrize(
    "overrides",
    [
        {"collect_time": "2025-02-30 00:00:00"},
        {"collect_time": "2025-11-20 9:00:00"},
        {"private_ip1": "192.168.1.300"},
        {"private_ip2": "fe80::1%eth0"},
        {"mac1": "AA-BB:CC-DD-EE-FF"},
        {"mac2": "AABBCCDDEEF"},
    ],
)
def test_bad_terminal_field_format_is_e303(kit: Any, overrides: dict[str, str]) -> None:
    assert reject_code(kit, kit.plaintext(1, **overrides)) == "E303"


@pytest.mark.parametrize("flags", ["abc", "-1", "", "1.0", "0x10", "12345678901", "１"])
def test_bad_collect_flags_is_e303(kit: Any, flags: str) -> None:
    assert reject_code(kit, kit.plaintext(1, flags)) == "E303"


@pytest.mark.parametrize(
    "line",
    [
        {"public_ip": "10.0.0"},
        {"public_ip": "58.020.30.40"},
        {"public_port": "70000"},
        {"public_port": "-1"},
        {"public_port": ""},
        {"login_time": "2025-11-20 25:00:00"},
        {"login_time": "25:00:00"},
        {"login_time": "2025-11-20"},
        {"login_time": ""},
    ],
)
def test_bad_report_line_format_is_e303(kit: Any, line: dict[str, str]) -> None:
    assert reject_code(kit, kit.plaintext(1), line=kit.line(**line)) == "E303"


@pytest.mark.parametrize(
    "plaintext",
    [
        b"1@\xff\xfe",
        b"\xc0\xb1@x",  # overlong encoding of '1'
        b"1@\xed\xa0\x80",  # an encoded surrogate
        b"4@2025-11-20 08:59:30@\x80",
    ],
)
def test_plaintext_not_utf8_is_e304(kit: Any, plaintext: bytes) -> None:
    assert reject_code(kit, plaintext) == "E304"


def test_utf8_in_text_fields_is_fine(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1, device_name="交易终端-01"))
    assert record["device_name"] == "交易终端-01"


def test_plaintext_limit_is_1024_bytes(kit: Any) -> None:
    base = kit.plaintext(4, location="31.,121.5")
    pad = 1024 - len(base)
    at_limit = kit.plaintext(4, location="31." + "0" * pad + ",121.5")
    assert len(at_limit) == 1024
    assert kit.normalize(at_limit)["latitude"] == 31.0
    over = kit.plaintext(4, location="31." + "0" * (pad + 1) + ",121.5")
    assert reject_code(kit, over) == "E104"


@pytest.mark.parametrize("flags", ["2147483648", "4294967295", "9999999999"])
def test_collect_flags_beyond_the_record_int_is_e303(kit: Any, flags: str) -> None:
    # TerminalRecord.collect_flags is an Avro int (32-bit signed). A wider value cannot be stored;
    # fastavro writes it anyway, and readers that check the int range (Java) cannot read the record.
    assert reject_code(kit, kit.plaintext(1, flags)) == "E303"


def test_largest_record_int_collect_flags_is_accepted_with_w406(kit: Any) -> None:
    record = kit.normalize(kit.plaintext(1, "2147483647"))
    assert record["collect_flags"] == 2**31 - 1
    assert record["warnings"] == ["W406"]
