"""Shared fixtures for the unit tests: one market keyring per session and a report-building kit.

Everything the kit builds is written out by hand from the profile (field order of §5, report
line order of §3), not produced by the code under test, so tests can compare the pipeline's
output against it. The market keyring is made once with `create_market_keyring` (RSA key
generation is slow) in a session temporary directory.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline import schemas
from pipeline.codec import ReportLine
from pipeline.config import PipelineSettings, Settings
from pipeline.crypto.keyring import Keyring
from pipeline.crypto.suites import Suite
from pipeline.generate import KeySet
from pipeline.market import Investor, Market, MarketConfig, build_market
from pipeline.marketkeys import create_market_keyring
from pipeline.process import Processor
from pipeline.refdata import ReferenceData
from pipeline.stages.normalize import NormalizeSettings, normalize

# Profile §5, copied by hand: the fields of each terminal layout, in order.
SPEC_LAYOUTS: dict[int, tuple[str, ...]] = {
    1: ("type", "collect_time", "private_ip1", "private_ip2", "mac1", "mac2", "device_name", "os_version",
        "disk_serial", "cpu_serial", "bios_serial", "system_disk_partition", "collect_flags"),
    2: ("type", "collect_time", "private_ip1", "private_ip2", "mac1", "mac2", "device_name", "os_version",
        "disk_serial", "cpu_serial", "bios_serial", "collect_flags"),
    3: ("type", "collect_time", "private_ip1", "private_ip2", "mac1", "mac2", "device_name", "os_version",
        "disk_serial", "cpu_serial", "device_serial", "collect_flags"),
    4: ("type", "collect_time", "private_ip", "mac", "device_model", "os_version", "imei", "device_id", "phone",
        "location", "collect_flags"),
    5: ("type", "collect_time", "private_ip", "mac", "device_model", "os_version", "idfv", "phone", "location",
        "collect_flags"),
    6: ("type", "collect_time", "private_ip", "mac", "device_model", "os_version", "device_id", "phone", "location",
        "collect_flags"),
    7: ("type", "collect_time", "platform", "device_model", "os_version", "device_id", "location", "collect_flags"),
}  # fmt: skip

# 2025-11-20 09:00:00 China Standard Time = 2025-11-20 01:00:00 UTC (checked with `date -u`).
LOGIN_TEXT = "2025-11-20 09:00:00"
LOGIN_MS = 1_763_600_400_000
COLLECT_TEXT = "2025-11-20 08:59:30"
COLLECT_MS = LOGIN_MS - 30_000
RECEIVED_MS = LOGIN_MS + 2_000
NOW_MS = LOGIN_MS + 5_000
FINGERPRINT_KEY = b"unit-test-fingerprint-key-000001"

# Raw values in the forms a collector sends; every item present, so collect_flags is 0.
RAW_VALUES: dict[str, str] = {
    "collect_time": COLLECT_TEXT,
    "private_ip1": "192.168.1.10",
    "private_ip2": "10.0.0.7",
    "mac1": "aa-bb-cc-dd-ee-01",
    "mac2": "AA:BB:CC:DD:EE:02",
    "private_ip": "192.168.1.20",
    "mac": "a1b2c3d4e5f6",
    "device_name": "DESKTOP-ABC1234",
    "os_version": "Windows 10 Pro 22H2",
    "disk_serial": "WD-WX1234567890",
    "cpu_serial": "bfebfbff000906ea",
    "bios_serial": "C02ABCDEF1",
    "device_serial": "C02XYZ98765",
    "system_disk_partition": "C:^ABCD1234^NTFS^256G",
    "device_model": "Mi 14",
    "imei": "861234567890123",
    "device_id": "abcd1234efgh5678",
    "idfv": "0A1B2C3D4E5F60718293A4B5C6D7E8F9",
    "phone": "13812345678",
    "platform": "web",
    "location": "31.23040,121.47370",
}


@dataclass
class Kit:
    """Hand-built reports against the session market and keyring."""

    market: Market
    keyring_path: Path
    keys: KeySet
    keyring: Keyring
    versions: dict[Suite, int]
    investor: Investor
    other_investors: list[Investor]
    no_code_investor: Investor
    licensed: frozenset[str]
    vendor_id: str = "CTP"
    app_id: str = "CT_Q7_V1.0.0"
    relay_per_investor: str = "CT_RELAY_V1.0.0"
    relay_shared: str = "CT_RELAYB_V1.0.0"
    narrow_app: str = "CT_NARROW_V1.0"
    ghost_app: str = "ZZ_GHOST_V0.1"
    public_ip: str = "58.20.30.40"
    spec_layouts: dict[int, tuple[str, ...]] = field(default_factory=lambda: SPEC_LAYOUTS)
    raw_values: dict[str, str] = field(default_factory=lambda: dict(RAW_VALUES))

    # --- terminal information -------------------------------------------------------------

    def values(self, code: int, **overrides: str) -> dict[str, str]:
        """Raw values of every field of layout `code` (type and flags excluded), with overrides."""
        names = SPEC_LAYOUTS[code][1:-1]
        out = {name: RAW_VALUES[name] for name in names}
        for name, value in overrides.items():
            if name not in names:
                raise KeyError(f"{name} is not a field of layout {code}")
            out[name] = value
        return out

    def plaintext(self, code: int, flags: int | str = 0, **overrides: str) -> bytes:
        """`type@...@collect_flags` joined by hand in the profile's order."""
        values = self.values(code, **overrides)
        return "@".join([str(code), *(values[n] for n in SPEC_LAYOUTS[code][1:-1]), str(flags)]).encode()

    # --- report line and envelope ----------------------------------------------------------

    def line(self, blob: bytes = b"\x02", **overrides: Any) -> ReportLine:
        fields: dict[str, Any] = {
            "vendor_id": self.vendor_id,
            "key_version": self.versions[Suite.X25519],
            "terminal_info": blob,
            "app_type": 1,
            "public_ip": self.public_ip,
            "public_port": "51234",
            "login_time": LOGIN_TEXT,
            "app_id": self.app_id,
            "relay_app_id": "",
        }
        fields.update(overrides)
        return ReportLine(**fields)

    def envelope(self, investor: Investor | None = None, **overrides: Any) -> dict[str, Any]:
        inv = investor or self.investor
        env: dict[str, Any] = {
            "report_id": "R-0001",
            "reporter_type": inv.reporter_type,
            "reporter_id": inv.reporter_id,
            "broker_id": inv.broker_id,
            "investor_id": inv.investor_id,
            "user_id": inv.user_id,
            "trading_day": "20251120",
            "received_at": RECEIVED_MS,
            "report": "",
            "correction_of": None,
        }
        env.update(overrides)
        return env

    def normalize(
        self,
        plaintext: bytes,
        *,
        line: ReportLine | None = None,
        envelope: Mapping[str, Any] | None = None,
        skew_ms: int = 300_000,
        tolerance_ms: int = 300_000,
    ) -> dict[str, Any]:
        return normalize(
            envelope if envelope is not None else self.envelope(),
            line if line is not None else self.line(),
            plaintext,
            NormalizeSettings(skew_ms, tolerance_ms),
        )

    def seal(self, plaintext: bytes, suite: Suite = Suite.X25519, vendor_id: str | None = None) -> tuple[int, bytes]:
        version = self.versions[suite]
        return version, self.keys.reporter.encrypt(vendor_id or self.vendor_id, version, plaintext)

    @staticmethod
    def report_line_text(line: ReportLine, blob_text: str) -> str:
        """Profile §3 order, joined by hand."""
        return "@".join([
            line.vendor_id, str(line.key_version), blob_text, str(line.app_type), line.public_ip,
            str(line.public_port), line.login_time, line.app_id, line.relay_app_id,
        ])  # fmt: skip

    def value(
        self,
        plaintext: bytes,
        *,
        suite: Suite = Suite.X25519,
        investor: Investor | None = None,
        line: Mapping[str, Any] | None = None,
        envelope: Mapping[str, Any] | None = None,
    ) -> bytes:
        """A complete ingress value: sealed plaintext, report line, Avro single-object envelope."""
        line_fields = dict(line or {})
        vendor = line_fields.get("vendor_id", self.vendor_id)
        version, blob = self.seal(plaintext, suite, vendor)
        line_fields.setdefault("key_version", version)
        report_line = self.line(blob, **line_fields)
        text = self.report_line_text(report_line, base64.b64encode(blob).decode())
        env = self.envelope(investor, report=text, **dict(envelope or {}))
        return schemas.encode("lookthrough.ReportEnvelope", env)

    def topic(self, investor: Investor | None = None) -> str:
        return f"lt.ingress.{(investor or self.investor).reporter_id}"

    def processor(self, **pipeline: Any) -> Processor:
        settings = Settings(pipeline=PipelineSettings(fingerprint_key=FINGERPRINT_KEY, **pipeline))
        return Processor(settings, self.keyring, ReferenceData.from_mapping(self.market.reference_data()))


@pytest.fixture(scope="session")
def market() -> Market:
    return build_market(MarketConfig())


@pytest.fixture(scope="session")
def market_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeySet]:
    """(keyring path, reporter KeySet): one active key per suite, a revoked and a test key."""
    return create_market_keyring(tmp_path_factory.mktemp("lt-keys") / "keyring")


@pytest.fixture(scope="session")
def production_keyring(market_keys: tuple[Path, KeySet]) -> Keyring:
    return Keyring.load(market_keys[0], "production")


@pytest.fixture(scope="session")
def kit(market: Market, market_keys: tuple[Path, KeySet], production_keyring: Keyring) -> Kit:
    path, keys = market_keys
    versions = {entry.suite: entry.version for entry in production_keyring.entries() if entry.version in keys.active}
    assert set(versions) == {Suite.RSA, Suite.X25519, Suite.SM4}
    licensed = frozenset(s["exchange"] for s in market.subscribers if s["licensed"])
    companies = [inv for inv in market.investors if inv.reporter_type == "FUTURES_COMPANY"]
    routed = [inv for inv in companies if len(set(inv.trading_codes) & licensed) >= 2]
    no_code = [inv for inv in companies if not inv.trading_codes]
    assert len(routed) >= 4 and no_code
    return Kit(market, path, keys, production_keyring, versions, routed[0], routed[1:4], no_code[0], licensed)
