"""Enrich and route stages: E401, W402, W403, W405, W409, device fingerprint, routing, exchange records.

Reference data here is written by hand, so every expected warning and route follows from it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import schemas
from pipeline.errors import ConfigError, EnrichError
from pipeline.refdata import ReferenceData
from pipeline.stages import route
from pipeline.stages.enrich import (
    EnrichSettings,
    KeyedHash,
    device_fingerprint,
    enrich,
    observe_sharing,
    sharing_keys,
    sharing_warning,
)

from .sharing_support import BIOS_BIT, DISK_BIT, windows_login

DAY = 86_400_000
KEY = b"k" * 32
SETTINGS = EnrichSettings(fingerprint_key=KEY, sharing_max_investors=2, sharing_window_ms=DAY)

CODES_1 = {"SHFE": "11111111", "DCE": "22222222", "GFEX": "33333333"}
REF = {
    "vendors": [{"vendor_id": "CTP", "name": "CTP", "status": "active", "updated_at": 0}],
    "apps": [
        {"app_id": "CT_Q7_V1.0.0", "vendor_id": "CTP", "app_type": 1, "authorized_brokers": ["0101", "0202"]},
        {"app_id": "CT_RELAY_V1.0.0", "vendor_id": "CTP", "app_type": 2, "authorized_brokers": ["0101"]},
        {"app_id": "CT_ONLY202_V1", "vendor_id": "CTP", "app_type": 1, "authorized_brokers": ["0202"]},
    ],
    "accounts": [
        {"broker_id": "0101", "investor_id": "000000000001", "trading_codes": CODES_1},
        {"broker_id": "0101", "investor_id": "000000000002", "trading_codes": {}},
        {"broker_id": "0202", "investor_id": "000000000001", "trading_codes": {"CZCE": "44444444"}},
    ],
    "subscribers": [],
}


@pytest.fixture
def ref() -> ReferenceData:
    return ReferenceData.from_mapping(REF)


def record_for(kit: Any, *, broker: str = "0101", investor: str = "000000000001", code: int = 1,
               line: dict[str, Any] | None = None, **values: str) -> dict[str, Any]:  # fmt: skip
    envelope = kit.envelope(broker_id=broker, investor_id=investor, user_id=investor)
    return kit.normalize(kit.plaintext(code, **values), line=kit.line(**(line or {})), envelope=envelope)


# --- E401, W402, W403, W405 ------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["NOBODY", "ctp", "CTP_"])
def test_unknown_vendor_is_e401(kit: Any, ref: ReferenceData, vendor: str) -> None:
    record = record_for(kit, line={"vendor_id": vendor})
    with pytest.raises(EnrichError) as caught:
        enrich(record, ref, SETTINGS)
    assert caught.value.code == "E401"


@pytest.mark.parametrize(
    ("broker", "app", "app_type", "relay", "expected"),
    [
        ("0101", "CT_Q7_V1.0.0", 1, "", []),
        ("0101", "CT_Q7_V1.0.0", 2, "CT_RELAY_V1.0.0", []),
        ("0101", "ZZ_GHOST_V0.1", 1, "", ["W402"]),  # app not registered
        ("0101", "CT_Q7_V1.0.0", 2, "ZZ_GHOST_RELAY", ["W402"]),  # relay app not registered
        ("0101", "CT_ONLY202_V1", 1, "", ["W403"]),  # registered, not authorized for 0101
        ("0202", "CT_Q7_V1.0.0", 2, "CT_RELAY_V1.0.0", ["W403"]),  # relay not authorized for 0202
        ("0202", "ZZ_GHOST_V0.1", 2, "CT_RELAY_V1.0.0", ["W402", "W403"]),
        ("0202", "CT_ONLY202_V1", 1, "", []),
    ],
)
def test_app_registration_and_authorization(
    kit: Any, ref: ReferenceData, broker: str, app: str, app_type: int, relay: str, expected: list[str]
) -> None:
    record = record_for(kit, broker=broker, line={"app_id": app, "app_type": app_type, "relay_app_id": relay})
    enrich(record, ref, SETTINGS)
    assert sorted(record["warnings"]) == expected


@pytest.mark.parametrize(
    ("broker", "investor", "codes", "warnings"),
    [
        ("0101", "000000000001", CODES_1, []),
        ("0202", "000000000001", {"CZCE": "44444444"}, []),  # same investor ID, another broker
        ("0101", "000000000002", {}, ["W405"]),  # account without codes
        ("0101", "000000000099", {}, ["W405"]),  # no account at all
        ("0303", "000000000001", {}, ["W403", "W405"]),  # unknown broker: the app is not authorized either
    ],
)
def test_trading_codes_and_w405(
    kit: Any, ref: ReferenceData, broker: str, investor: str, codes: dict[str, str], warnings: list[str]
) -> None:
    record = record_for(kit, broker=broker, investor=investor)
    enrich(record, ref, SETTINGS)
    assert record["trading_codes"] == codes
    assert sorted(record["warnings"]) == warnings


def test_enrich_keeps_normalize_warnings(kit: Any, ref: ReferenceData) -> None:
    record = record_for(kit, investor="000000000002", line={"public_ip": "10.0.0.1", "app_id": "ZZ_GHOST_V0.1"})
    enrich(record, ref, SETTINGS)
    assert sorted(record["warnings"]) == ["W402", "W405", "W408"]


# --- device fingerprint ----------------------------------------------------------------------------


def fingerprint(kit: Any, code: int = 1, key: bytes = KEY, line: dict[str, Any] | None = None, **values: str) -> Any:
    return device_fingerprint(record_for(kit, code=code, line=line, **values), key)


def test_fingerprint_is_stable_across_network_changes(kit: Any) -> None:
    base = fingerprint(kit)
    assert isinstance(base, str) and len(base) == 32 and all(c in "0123456789abcdef" for c in base)
    assert fingerprint(kit, mac1="10-20-30-40-50-60", mac2="", private_ip1="172.16.0.9", private_ip2="") == base
    assert fingerprint(kit, line={"public_ip": "2400:8888::9", "public_port": "1"}) == base
    assert fingerprint(kit, collect_time="2025-11-20 08:58:00", device_name="RENAMED", os_version="Windows 11") == base
    assert fingerprint(kit, cpu_serial="BFEBFBFF000906EA") == base  # same serial after upper-casing


def test_fingerprint_differs_across_devices_and_keys(kit: Any) -> None:
    base = fingerprint(kit)
    others = {
        fingerprint(kit, disk_serial="WD-OTHER0000001"),
        fingerprint(kit, cpu_serial="BFEBFBFF00000001"),
        fingerprint(kit, bios_serial="C02OTHER01"),
        fingerprint(kit, key=b"another key"),
    }
    assert base not in others and len(others) == 4


def test_mobile_fingerprints(kit: Any) -> None:
    android = fingerprint(kit, 4)
    assert fingerprint(kit, 4, mac="AABBCCDDEEFF", phone="13900000000", device_model="Other") == android
    assert fingerprint(kit, 4, imei="869999999999999") != android
    assert fingerprint(kit, 4, device_id="ffffeeeeddddcccc") != android
    ios = fingerprint(kit, 5)
    assert fingerprint(kit, 5, idfv="FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF") != ios
    assert fingerprint(kit, 5, mac="020000000000") == ios


def test_no_stable_identifier_means_no_fingerprint(kit: Any) -> None:
    record = record_for(kit, disk_serial="", cpu_serial="", bios_serial="")
    assert device_fingerprint(record, KEY) is None


def test_fingerprint_is_the_documented_hmac_whatever_the_key_form(kit: Any) -> None:
    # README: HMAC-SHA256 over the kind and the stable identifiers (disk, CPU, BIOS on Windows),
    # first 128 bits in hex. Written out here with the standard library.
    message = b"WINDOWS\x1fWD-WX1234567890\x1fBFEBFBFF000906EA\x1fC02ABCDEF1"
    expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()[:32]
    record = record_for(kit)
    assert device_fingerprint(record, KEY) == device_fingerprint(record, KeyedHash(KEY)) == expected
    for key in (b"", b"k", b"x" * 64, b"y" * 65, b"z" * 300):  # around SHA-256's 64-byte block
        assert KeyedHash(key).hex32(message) == hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


# --- W409 -----------------------------------------------------------------------------------------


def test_observe_sharing_exact_sequence() -> None:
    seen: dict[str, int] = {}
    window = 100
    steps = [
        # (investor, at, distinct investors within [at - window, at])
        ("A", 0, 1),
        ("B", 10, 2),
        ("A", 20, 2),  # A again: still two investors
        ("C", 30, 3),
        ("B", 111, 3),  # horizon 11: A (20) and C (30) still inside
        ("D", 125, 3),  # horizon 25: A (20) expires; B, C, D remain
        ("E", 231, 1),  # horizon 131: B (111), C (30), D (125) expire
        ("F", 331, 2),  # horizon 231: E at exactly the horizon is still inside
        ("G", 332, 2),  # horizon 232: E expires; F, G
    ]
    for investor, at, expected in steps:
        assert observe_sharing(seen, investor, at, window) == expected, (investor, at)
    assert seen == {"F": 331, "G": 332}


def login_on(investor: str, at: int, broker: str = "0101", **identifiers: str) -> dict[str, Any]:
    """An enriched record as `sharing_warning` reads it: an iPhone by default (one identifier, IDFV)."""
    kind, ids = ("WINDOWS", identifiers) if identifiers else ("IOS", {"idfv": "0A1B2C3D4E5F60718293A4B5C6D7E8F9"})
    return {"terminal_kind": kind, "device_fingerprint": "f", "broker_id": broker, "investor_id": investor,
            "login_time": at, "warnings": [], **ids}  # fmt: skip


def test_sharing_warning_only_above_the_maximum(kit: Any) -> None:
    sharing: dict[str, dict[str, int]] = {}
    got = []
    for i, (investor, at) in enumerate([("1", 0), ("2", 1000), ("3", 2000), ("1", 3000), ("4", 2 * DAY + 3000)]):
        record = login_on(investor, at)
        sharing_warning(record, sharing, SETTINGS)
        got.append((i, record["warnings"]))
    # max 2 investors: the third within a day is W409, and so is the first coming back;
    # two days later the old sightings are outside the window.
    assert got == [(0, []), (1, []), (2, ["W409"]), (3, ["W409"]), (4, [])]


def test_sharing_counts_broker_and_investor_together() -> None:
    sharing: dict[str, dict[str, int]] = {}
    for broker in ("0101", "0202", "0303"):
        record = login_on("000000000001", 0, broker)
        sharing_warning(record, sharing, SETTINGS)
    assert record["warnings"] == ["W409"]  # the same investor ID at three brokers is three accounts


def test_observe_sharing_ignores_sightings_after_the_window_of_a_late_report() -> None:
    # Ingress is partitioned by investor, so reports of one device arrive out of login order.
    # Investors seen two days *after* this login are not "within the window" of it.
    seen: dict[str, int] = {}
    observe_sharing(seen, "A", 2 * DAY, DAY)
    observe_sharing(seen, "B", 2 * DAY, DAY)
    assert observe_sharing(seen, "C", 0, DAY) == 1


def test_w409_through_the_processor(kit: Any) -> None:
    proc = kit.processor(sharing_max_investors=2, sharing_window_seconds=86_400)
    shared = kit.plaintext(1)
    investors = [kit.investor, *kit.other_investors]
    days = [0, 0, 0, 0, 2]  # login day offsets
    who = [0, 1, 2, 0, 1]
    results = []
    for i, (day, idx) in enumerate(zip(days, who, strict=True)):
        inv = investors[idx]
        login = f"2025-11-{20 + day} 09:00:{i:02d}"
        plaintext = shared.replace(b"2025-11-20 08:59:30", f"2025-11-{20 + day} 08:59:30".encode())
        value = kit.value(plaintext, investor=inv, line={"login_time": login}, envelope={"report_id": f"S-{i}"})
        results.append(proc.process(kit.topic(inv), 0, i, inv.investor_id.encode(), value, 1_763_600_405_000))
    assert [r.code for r in results] == [None] * 5
    assert [("W409" in r.warnings) for r in results] == [False, False, True, True, False]


# --- W409 per physical device: sharing keys ---------------------------------------------------------



def keys_of(kit: Any, code: int = 1, key: bytes = KEY, **values: str) -> list[str]:
    record = record_for(kit, code=code, **values)
    record["device_fingerprint"] = device_fingerprint(record, key)
    return sharing_keys(record, EnrichSettings(key, 2, DAY))


def test_sharing_keys_one_per_unique_identifier(kit: Any) -> None:
    full = keys_of(kit)
    assert len(full) == 2 and len(set(full)) == 2  # disk and BIOS serial; never the CPU serial alone
    assert all(len(k) == 32 and all(c in "0123456789abcdef" for c in k) for k in full)
    assert fingerprint(kit) not in full
    # The same identifier gives the same key whatever else the login carries or lacks.
    assert keys_of(kit, bios_serial="") == [full[0]]
    assert keys_of(kit, disk_serial="") == [full[1]]
    assert keys_of(kit, cpu_serial="BFEBFBFF00000001", device_name="OTHER") == full
    other_bios = keys_of(kit, bios_serial="C02OTHER01")
    assert other_bios[0] == full[0] and other_bios[1] != full[1]
    # Keyed: another fingerprint key gives other keys; another kind with the same serials too.
    assert set(keys_of(kit, key=b"another key")).isdisjoint(full)
    assert set(keys_of(kit, 2)).isdisjoint(full)  # Linux, same disk and BIOS serial values
    android = keys_of(kit, 4)
    assert len(android) == 2 and keys_of(kit, 4, imei="") == [android[1]]
    assert len(keys_of(kit, 5)) == len(keys_of(kit, 6)) == len(keys_of(kit, 7)) == 1


def test_without_a_unique_identifier_the_fingerprint_is_the_key(kit: Any) -> None:
    cpu_only = record_for(kit, disk_serial="", bios_serial="")
    cpu_only["device_fingerprint"] = device_fingerprint(cpu_only, KEY)
    assert sharing_keys(cpu_only, SETTINGS) == [fingerprint(kit, disk_serial="", bios_serial="")]
    placeholders = record_for(kit, disk_serial="0000-0000", bios_serial="To Be Filled By O.E.M.")
    placeholders["device_fingerprint"] = device_fingerprint(placeholders, KEY)
    assert sharing_keys(placeholders, SETTINGS) == [placeholders["device_fingerprint"]]
    assert keys_of(kit, bios_serial="Default string") == [keys_of(kit)[0]]  # the disk serial still counts
    nothing = record_for(kit, disk_serial="", cpu_serial="", bios_serial="")
    nothing["device_fingerprint"] = None
    assert sharing_keys(nothing, SETTINGS) == []


def w409_of_logins(kit: Any, logins: list[tuple[int, dict[str, str], int]]) -> list[bool]:
    """Windows logins through a fresh processor (max 2 investors a day): (investor index, identifier
    overrides, collect_flags) each; whether each got W409. Every login is a minute after the last."""
    proc = kit.processor(sharing_max_investors=2, sharing_window_seconds=86_400)
    return ["W409" in windows_login(kit, proc, i, who, values, flags).warnings
            for i, (who, values, flags) in enumerate(logins)]  # fmt: skip


def test_w409_counts_a_device_whose_bios_serial_is_sometimes_missing(kit: Any) -> None:
    # One machine, three investors; the second login's BIOS serial was not collected (empty, bit
    # set), so it has another fingerprint. The third investor is the third on this machine: W409.
    # Keyed by fingerprint, the machine's investors were split 2 + 1 and W409 was missed.
    no_bios = {"bios_serial": ""}
    assert w409_of_logins(kit, [(0, {}, 0), (1, no_bios, BIOS_BIT), (2, {}, 0)]) == [False, False, True]
    assert w409_of_logins(kit, [(0, no_bios, BIOS_BIT), (1, {}, 0), (2, no_bios, BIOS_BIT)]) == [False, False, True]


def test_w409_counts_the_union_of_a_logins_identifiers(kit: Any) -> None:
    # Investor 1 logs in without the BIOS serial, investor 2 without the disk serial: no key has
    # seen all three investors, but the fourth login carries both serials and sees them all
    # (the largest count over its keys would be 2 and miss it).
    logins = [(0, {}, 0), (1, {"bios_serial": ""}, BIOS_BIT), (2, {"disk_serial": ""}, DISK_BIT), (0, {}, 0)]
    assert w409_of_logins(kit, logins) == [False, False, False, True]


def test_w409_does_not_join_machines_by_cpu_serial_or_placeholder_serials(kit: Any) -> None:
    # Three machines with one CPU model (one ProcessorId), one investor each: no W409.
    machines = [{"disk_serial": f"WD-WX00000000{i}", "bios_serial": f"C02MACHINE{i}"} for i in range(3)]
    assert w409_of_logins(kit, [(i, m, 0) for i, m in enumerate(machines)]) == [False, False, False]
    # Three white-box machines whose BIOS reports the board maker's placeholder: no W409 either.
    oem = [{"disk_serial": f"WD-WX00000000{i}", "bios_serial": "To Be Filled By O.E.M."} for i in range(3)]
    assert w409_of_logins(kit, [(i, m, 0) for i, m in enumerate(oem)]) == [False, False, False]
    # But the CPU-only logins of one machine still count together (keyed by the whole fingerprint).
    cpu_only = {"disk_serial": "", "bios_serial": ""}
    assert w409_of_logins(kit, [(i, cpu_only, DISK_BIT | BIOS_BIT) for i in range(3)]) == [False, False, True]


def spec_observe(seen: dict[str, int], investor: str, at: int, window: int) -> set[str]:
    """The rule by its definition: record the sighting, take the investors whose last sighting is
    within the window of `at` (either side), then drop those more than a window before the newest."""
    seen[investor] = max(seen.get(investor, at), at)
    within = {k for k, t in seen.items() if abs(t - at) <= window}
    newest = max(seen.values())
    for k in [k for k, t in seen.items() if t < newest - window]:
        del seen[k]
    return within


sightings = st.lists(
    st.tuples(st.sampled_from("ABCDEF"), st.integers(0, 500), st.sets(st.sampled_from(["disk_serial", "bios_serial"]),
                                                                      min_size=1)),
    max_size=40,
)


@given(sightings)
def test_sharing_warning_counts_the_union_of_the_keys_in_the_window(steps: list[tuple[str, int, set[str]]]) -> None:
    # One Windows machine; each login carries its disk serial, its BIOS serial or both.
    window, limit = 100, 3
    settings = EnrichSettings(KEY, limit, window)
    serial = {"disk_serial": "WD-WX1234567890", "bios_serial": "C02ABCDEF1"}
    key_of = {name: sharing_keys(login_on("x", 0, **{name: serial[name]}), settings)[0] for name in serial}
    sharing: dict[str, dict[str, int]] = {}
    model: dict[str, dict[str, int]] = {"disk_serial": {}, "bios_serial": {}}
    for investor, at, names in steps:
        expected: set[str] = set()
        for name in names:
            expected |= spec_observe(model[name], f"0101:{investor}", at, window)
        record = login_on(investor, at, **{name: serial[name] for name in names})
        sharing_warning(record, sharing, settings)
        assert record["warnings"] == (["W409"] if len(expected) > limit else [])
        assert sharing == {key_of[name]: state for name, state in model.items() if state}


# --- route ------------------------------------------------------------------------------------------


def test_route_keeps_licensed_exchanges_with_a_trading_code() -> None:
    record = {"trading_codes": CODES_1}
    assert route.route(record, frozenset({"SHFE", "GFEX", "CZCE"})) == [("GFEX", "33333333"), ("SHFE", "11111111")]
    assert route.route(record, frozenset()) == []
    assert route.route({"trading_codes": {}}, frozenset({"SHFE"})) == []


def _sub(sid: str, exchange: str, licensed: bool, valid_from: int, valid_to: int | None) -> dict[str, Any]:
    return {"subscriber_id": sid, "exchange": exchange, "licence_no": "L", "licensed": licensed, "tier": "full",
            "valid_from": valid_from, "valid_to": valid_to, "updated_at": 0}  # fmt: skip


def test_licensed_exchanges_within_validity() -> None:
    now = 1_000_000
    ref = ReferenceData.from_mapping({
        "subscribers": [
            _sub("s1", "SHFE", True, 0, None),
            _sub("s2", "DCE", False, 0, None),  # not licensed
            _sub("s3", "GFEX", True, now + 1, None),  # not yet valid
            _sub("s4", "CZCE", True, 0, now - 1),  # expired
            _sub("s5", "INE", True, 0, now + DAY),
            _sub("s6", "CFFEX", False, 0, None),
            _sub("s7", "CFFEX", True, now, None),  # a second, licensed subscriber, valid from now
        ]
    })  # fmt: skip
    assert ref.licensed_exchanges(now) == frozenset({"SHFE", "INE", "CFFEX"})
    assert ref.licensed_exchanges(now + 2 * DAY) == frozenset({"SHFE", "GFEX", "CFFEX"})


def test_exchange_record_hides_internal_ids(kit: Any, ref: ReferenceData) -> None:
    record = record_for(kit)
    enrich(record, ref, SETTINGS)
    record["suite"] = "X25519-HKDF-SHA256/AES-256-GCM"
    record["source"] = {"topic": "lt.ingress.0101", "partition": 0, "offset": 1}
    out = route.exchange_record(record, "SHFE", "11111111")
    for name in ("investor_id", "user_id", "broker_id", "trading_codes"):
        assert name not in out
    assert out["exchange"] == "SHFE" and out["trading_code"] == "11111111" and out["member_id"] == "0101"
    assert "22222222" not in repr(out) and "33333333" not in repr(out)  # other exchanges' codes
    assert record["investor_id"] == "000000000001"  # the input record is not changed


def test_an_exchange_schema_with_internal_ids_is_refused() -> None:
    route.check_exchange_fields({"exchange", "trading_code", "member_id", "device_fingerprint"})
    with pytest.raises(ConfigError, match="investor_id"):
        route.check_exchange_fields({"exchange", "investor_id"})


def test_processor_routes_to_licensed_exchanges_only(kit: Any) -> None:
    inv = kit.investor
    proc = kit.processor()
    result = proc.process(kit.topic(), 0, 7, inv.investor_id.encode(), kit.value(kit.plaintext(1)), 1_763_600_405_000)
    assert result.code is None
    expected = {ex: code for ex, code in inv.trading_codes.items() if ex in kit.licensed}
    exchange_outputs = [o for o in result.outputs if o.topic.startswith("lt.exchange.")]
    assert {o.topic.removeprefix("lt.exchange."): o.key.decode() for o in exchange_outputs} == expected
    for output in exchange_outputs:
        name, datum = schemas.decode(output.value)
        assert name == "lookthrough.ExchangeRecord"
        assert not {"investor_id", "user_id", "broker_id", "trading_codes"} & set(datum)
        assert datum["member_id"] == inv.broker_id
        assert datum["trading_code"] == expected[datum["exchange"]]
        assert inv.investor_id.encode() not in output.value
        for other_exchange, other_code in inv.trading_codes.items():
            if other_exchange != datum["exchange"]:
                assert other_code.encode() not in output.value
    topics = sorted(o.topic for o in result.outputs)
    assert topics == sorted(["lt.reports", f"lt.feedback.{inv.reporter_id}", *(f"lt.exchange.{e}" for e in expected)])


def test_processor_stores_but_does_not_route_without_trading_codes(kit: Any) -> None:
    inv = kit.no_code_investor
    result = kit.processor().process(
        kit.topic(inv), 0, 1, None, kit.value(kit.plaintext(4), investor=inv), 1_763_600_405_000
    )
    assert result.code is None and result.warnings == ("W405",)
    assert sorted(o.topic for o in result.outputs) == ["lt.feedback." + inv.reporter_id, "lt.reports"]


@pytest.mark.parametrize(("app", "warning"), [("ZZ_GHOST_V0.1", "W402"), ("CT_NARROW_V1.0", "W403")])
def test_market_apps_give_w402_and_w403(kit: Any, app: str, warning: str) -> None:
    narrow = next(a for a in kit.market.apps if a.app_id == "CT_NARROW_V1.0")
    inv = next(
        i
        for i in kit.market.investors
        if i.reporter_type == "FUTURES_COMPANY" and i.trading_codes and i.broker_id not in narrow.authorized_brokers
    )
    value = kit.value(kit.plaintext(2), investor=inv, line={"app_id": app})
    result = kit.processor().process(kit.topic(inv), 0, 1, None, value, 1_763_600_405_000)
    assert result.code is None and result.warnings == (warning,)
