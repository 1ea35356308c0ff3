"""Synthetic reports with ground truth: what each planted report must become.

`plan_reports` walks a `Market` and yields `PlannedReport`s: the Kafka record a reporter
would produce (topic, key, value bytes) and its `Truth` — accepted or rejected, the
exact profile code, the exact warnings, and the exchanges (with trading codes) that must
receive it. One defect at most is planted per report, so every expected code is exact.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from pipeline import schemas
from pipeline.codec import build_report_line, build_terminal_info
from pipeline.market import App, Device, Investor, Market
from pipeline.profile import layouts, limits

DEFECTS = (
    "E101", "E102", "E103", "E104", "E105", "E201", "E202", "E203", "E204", "E205",
    "E301", "E302", "E303", "E304", "E401",
    "W402", "W403", "W404", "W405", "W406", "W407", "W408",
)  # fmt: skip
_ALIGNED_ITEMS = {1: ("bios_serial",), 2: ("bios_serial", "disk_serial"), 4: ("imei",), 5: ("phone",)}
# Hardware items that name one device on their own (profile §5 fields). Not the CPU serial: a
# Windows ProcessorId is the same on every CPU of a model, so W409 cannot tell devices by it and
# counts a login that carries no other identifier apart from the device's other logins.
_UNIQUE_ITEMS = ("disk_serial", "bios_serial", "device_serial", "imei", "device_id", "idfv")
_DAY_MS = 86_400_000
_CST_MS = 8 * 3_600_000


class Sealing(Protocol):
    def encrypt(self, vendor_id: str, key_version: int, plaintext: bytes) -> bytes: ...


@dataclass(frozen=True)
class KeySet:
    """The reporter's public keys, and which versions are usable, revoked, or test keys."""

    reporter: Sealing
    active: tuple[int, ...]
    revoked: int
    test: int


@dataclass(frozen=True)
class PlanConfig:
    reports: int = 20_000
    defect_rate: float = 0.006  # per defect class; 22 classes ≈ 13 % of reports carry one
    correction_rate: float = 0.01
    bare_login_time_rate: float = 0.05
    ipv6_rate: float = 0.05
    missing_item_rate: float = 0.05
    seed: int = 7
    unknown_key_version: int = 999


@dataclass
class Truth:
    """What the pipeline must do with one report (the generator's record of what it planted)."""

    index: int
    topic: str
    reporter_id: str
    report_id: str
    investor: str
    device_key: str
    outcome: str  # "accepted" | "rejected"
    code: str | None = None
    warnings: list[str] = field(default_factory=list)
    w409_possible: bool = False  # the device is planted as shared by more investors than W409 allows
    # W409 when the reports are processed in plan order by one processor with the profile's
    # sharing limits: more than the allowed investors used this physical device within the window
    # so far (this login included), counting the logins that carried a unique identifier; a login
    # that carried none (a Linux login missing both disk and BIOS serial) against the device's
    # other such logins only.
    w409_in_order: bool = False
    exchanges: dict[str, str] = field(default_factory=dict)
    correction_of: str | None = None
    broker_id: str = ""
    app_ids: list[str] = field(default_factory=list)
    missing_items: list[str] = field(default_factory=list)  # terminal items left out as not collected


@dataclass
class PlannedReport:
    topic: str
    key: bytes
    value: bytes
    truth: Truth

    def to_json(self) -> str:
        return json.dumps({
            "topic": self.topic,
            "key": self.key.decode(),
            "value": base64.b64encode(self.value).decode(),
        })


def _cst_text(ms: int) -> str:
    seconds = (ms + _CST_MS) // 1000
    days, rest = divmod(seconds, 86_400)
    day = date(1970, 1, 1) + timedelta(days=days)
    return f"{day.isoformat()} {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _mac_text(rng: random.Random, mac: str) -> str:
    style = rng.randrange(4)
    pairs = [mac[i : i + 2] for i in range(0, 12, 2)]
    if style == 0:
        return mac
    if style == 1:
        return "-".join(pairs)
    if style == 2:
        return ":".join(pairs).lower()
    return mac.lower()


def _terminal_values(rng: random.Random, device: Device, collect_ms: int) -> tuple[dict[str, str], int]:
    values = dict(device.hardware)
    values["collect_time"] = _cst_text(collect_ms)
    if device.terminal_type in (1, 2, 3):
        for i, ip in enumerate(device.private_ips[:2]):
            values[f"private_ip{i + 1}"] = ip
        for i, mac in enumerate(device.macs[:2]):
            values[f"mac{i + 1}"] = _mac_text(rng, mac)
    elif device.terminal_type in (4, 5, 6):
        values["private_ip"] = device.private_ips[0]
        values["mac"] = _mac_text(rng, device.macs[0])
        values["location"] = f"{rng.uniform(22, 41):.5f},{rng.uniform(100, 122):.5f}"
    else:
        values["location"] = f"{rng.uniform(22, 41):.5f},{rng.uniform(100, 122):.5f}"
    return values, 0


def _flag_bit(device: Device, name: str) -> int:
    layout = layouts()[device.terminal_type]
    position = layout.fields.index(name)
    for bit, positions in layout.items:
        if position in positions:
            return bit
    raise KeyError(name)


class _Planner:
    def __init__(self, market: Market, keys: KeySet, config: PlanConfig) -> None:
        self.market = market
        self.keys = keys
        self.config = config
        self.rng = random.Random(config.seed ^ market.config.seed)
        self.apps_by_vendor: dict[str, dict[int, list[App]]] = {}
        for app in market.apps:
            if app.registered and app.app_id not in ("CT_NARROW_V1.0",):
                self.apps_by_vendor.setdefault(app.vendor_id, {}).setdefault(app.app_type, []).append(app)
        self.sent: dict[str, list[str]] = {}  # investor → report_ids accepted so far (for corrections)
        self.no_code = [inv for inv in market.investors if not inv.trading_codes]
        self.narrow_broker = next(a for a in market.apps if a.app_id == "CT_NARROW_V1.0").authorized_brokers[0]
        self.reporters = sorted({inv.reporter_id for inv in market.investors})
        self.licensed = {s["exchange"] for s in market.subscribers if s["licensed"]}
        self.oversharing = {
            key for key, owners in market.shared_devices.items()
            if len(owners) > limits().device_sharing_max_investors
        }
        # (device, carried a unique identifier) → investor → last accepted login (ms): W409 in order.
        self.sightings: dict[tuple[str, bool], dict[str, int]] = {}

    def sighted(self, device: str, identified: bool, investor: str, login_ms: int) -> bool:
        """Record an accepted login; whether W409 is due for it in plan order (`Truth.w409_in_order`)."""
        seen = self.sightings.setdefault((device, identified), {})
        seen[investor] = max(seen.get(investor, login_ms), login_ms)
        window_ms = limits().device_sharing_window_seconds * 1000
        investors = sum(1 for t in seen.values() if abs(login_ms - t) <= window_ms)
        return investors > limits().device_sharing_max_investors

    def pick_defect(self) -> str | None:
        roll = self.rng.random()
        for i, code in enumerate(DEFECTS):
            if roll < self.config.defect_rate * (i + 1):
                return code
        return None

    def pick_investor(self, defect: str | None) -> Investor:
        if defect == "W405" and self.no_code:
            return self.rng.choice(self.no_code)
        while True:
            inv = self.rng.choice(self.market.investors)
            if defect == "W403" and inv.broker_id == self.narrow_broker:
                continue
            return inv

    def plan(self, index: int) -> PlannedReport:
        rng, cfg, market = self.rng, self.config, self.market
        defect = self.pick_defect()
        inv = self.pick_investor(defect)
        device = market.devices[rng.choice(inv.devices)]
        vendor_id = rng.choice([v for v, _ in market.vendors])
        app_type = rng.choices((1, 2, 3), (0.7, 0.2, 0.1))[0]
        app_id = rng.choice(self.apps_by_vendor[vendor_id][1]).app_id
        relay_app_id = rng.choice(self.apps_by_vendor[vendor_id][app_type]).app_id if app_type != 1 else ""
        day_start = market.config.epoch_ms // _DAY_MS * _DAY_MS - _CST_MS  # China midnight
        login_ms = day_start + 9 * 3_600_000 + index * 1000 + rng.randrange(1000)
        received_ms = login_ms + rng.randrange(3000)
        collect_ms = login_ms - rng.randrange(30_000)
        values, flags = _terminal_values(rng, device, collect_ms)
        missing_items: list[str] = []
        if rng.random() < cfg.missing_item_rate and device.terminal_type in _ALIGNED_ITEMS:
            # A genuinely missing item, reported consistently: empty with its bit set.
            for name in _ALIGNED_ITEMS[device.terminal_type]:
                if values.pop(name, None) is not None:
                    missing_items.append(name)
                flags |= 1 << _flag_bit(device, name)
        public_ip = inv.public_ip
        if rng.random() < cfg.ipv6_rate:
            public_ip = f"24008888{rng.randrange(16**24):024x}"  # CTP's 32 hex digits form
        login_text = _cst_text(login_ms)
        if rng.random() < cfg.bare_login_time_rate:
            login_text = login_text[11:]
        key_version = rng.choice(self.keys.active)
        reporter_id = inv.reporter_id
        report_id = f"{reporter_id}-{index:08d}"
        correction_of = None
        earlier = self.sent.get(inv.investor_id)
        if earlier and rng.random() < cfg.correction_rate and defect is None:
            correction_of = rng.choice(earlier)

        warnings: set[str] = set()
        type_code = device.terminal_type
        if defect == "W402":
            app_id, app_type, relay_app_id = "ZZ_GHOST_V0.1", 1, ""
        elif defect == "W403":
            app_id, app_type, relay_app_id = "CT_NARROW_V1.0", 1, ""
        elif defect == "W404":
            app_type, relay_app_id = 2, ""
        elif defect == "W406":
            values.pop("os_version", None)
        elif defect == "W407":
            values["collect_time"] = _cst_text(login_ms - 600_000)
        elif defect == "W408":
            public_ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        elif defect == "E401":
            vendor_id = "NOBODY"
        elif defect == "E201":
            key_version = cfg.unknown_key_version
        elif defect == "E202":
            key_version = self.keys.revoked
        elif defect == "E203":
            key_version = self.keys.test
        if defect and defect.startswith("W"):
            warnings.add(defect)
        if not inv.trading_codes:
            warnings.add("W405")

        plaintext = build_terminal_info(type_code, values, flags)
        if defect == "E301":
            plaintext = b"9" + plaintext[1:]
        elif defect == "E302":
            plaintext = plaintext.rsplit(b"@", 2)[0] + b"@" + plaintext.rsplit(b"@", 1)[1]
        elif defect == "E303":
            plaintext = plaintext.replace(b"@" + values["collect_time"].encode() + b"@", b"@2025-13-45 99:99:99@", 1)
        elif defect == "E304":
            plaintext = plaintext.replace(b"@", b"@\xff\xfe", 1)
        # An unknown version is rejected before decryption, so any real key can seal that blob.
        sealed_with = self.keys.active[0] if defect == "E201" else key_version
        blob = self.keys.reporter.encrypt(vendor_id, sealed_with, plaintext)
        if defect == "E204":
            position = 1 + rng.randrange(len(blob) - 1)
            blob = blob[:position] + bytes([blob[position] ^ 0x40]) + blob[position + 1 :]
        elif defect == "E205":
            blob = b"\x7f" + blob[1:]
        line = build_report_line(
            vendor_id=vendor_id, key_version=key_version, terminal_info=blob, app_type=app_type,
            public_ip=public_ip, public_port=rng.randrange(1024, 65536), login_time=login_text,
            app_id=app_id if defect != "E104" else "XY Q7 V1.0", relay_app_id=relay_app_id,
        )  # fmt: skip
        if defect == "E103":
            line = line.rsplit("@", 1)[0]
        envelope: dict[str, Any] = {
            "report_id": report_id,
            "reporter_type": inv.reporter_type,
            "reporter_id": reporter_id,
            "broker_id": inv.broker_id,
            "investor_id": inv.investor_id if defect != "E102" else "",
            "user_id": inv.user_id,
            "trading_day": _cst_text(login_ms)[:10].replace("-", ""),
            "received_at": received_ms,
            "report": line,
            "correction_of": correction_of,
        }
        if defect == "E105":
            envelope["reporter_id"] = next(r for r in self.reporters if r != reporter_id)
        value = schemas.encode("lookthrough.ReportEnvelope", envelope)
        if defect == "E101":
            value = json.dumps(envelope).encode()

        topic = f"lt.ingress.{reporter_id}"
        truth = Truth(index, topic, reporter_id, report_id, market.investor_key(inv), device.device_key,
                      "accepted", correction_of=correction_of, broker_id=inv.broker_id,
                      app_ids=[a for a in (app_id, relay_app_id) if a], missing_items=missing_items)  # fmt: skip
        if defect and defect.startswith("E"):
            truth.outcome, truth.code = "rejected", defect
        else:
            truth.warnings = sorted(warnings)
            truth.w409_possible = device.device_key in self.oversharing
            identified = any(values.get(name) for name in _UNIQUE_ITEMS)
            # The pipeline times a login by its report line, to the second.
            truth.w409_in_order = self.sighted(device.device_key, identified, truth.investor, login_ms // 1000 * 1000)
            truth.exchanges = {ex: code for ex, code in inv.trading_codes.items() if ex in self.licensed}
            self.sent.setdefault(inv.investor_id, []).append(report_id)
        return PlannedReport(topic, inv.investor_id.encode(), value, truth)


def plan_reports(
    market: Market, keys: KeySet, config: PlanConfig, indices: Iterable[int] | None = None
) -> Iterator[PlannedReport]:
    """Yield planned reports, deterministically for the same inputs.

    By default indices 0 … `config.reports - 1`. A report's index sets its ID and its login time
    (09:00 China time on the market's day + index seconds), so indices a day of seconds apart
    spread one market over successive trading days.
    """
    planner = _Planner(market, keys, config)
    for index in range(config.reports) if indices is None else indices:
        yield planner.plan(index)


def truth_json(truth: Truth) -> str:
    return json.dumps(asdict(truth), ensure_ascii=False, sort_keys=True)
