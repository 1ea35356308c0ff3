"""Device analytics when identifiers are collected only sometimes, on the real server and on chdb.

The market is planned with a high rate of collectable items that were not collected (a Windows
BIOS serial, a Linux BIOS and disk serial, an Android IMEI: `missing_item_rate`), decided report by
report, so one physical device reaches the store under two fingerprints: with the item and without
it. The reports go through the real pipeline stages in this process (`Processor`, the code the
workers run) and into a fresh database through the sink's storing step, without Kafka. Expected
values come from the generator's truth (each report's device, investor and left-out items) and
its market (the planted shared devices), never from the store; the stored fingerprints are only
mapped to the generator's devices through the report IDs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.config import ClickHouseSettings, PipelineSettings, Settings
from pipeline.crypto.keyring import Keyring
from pipeline.generate import PlanConfig, Truth, plan_reports
from pipeline.market import Market, MarketConfig, build_market
from pipeline.marketkeys import create_market_keyring
from pipeline.process import Processor
from pipeline.refdata import ReferenceData
from pipeline.store import queries
from pipeline.store.backend import Backend, connect
from pipeline.store.batch import Batch
from pipeline.store.migrations import migrate
from pipeline.store.output import render
from pipeline.store.policy import Retention
from pipeline.store.storing import Backoff, SinkStats, Storer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EPOCH = dt.datetime(2025, 11, 20, 4, 0, tzinfo=dt.UTC)
REPORTS = 8000
MISSING_ITEM_RATE = 0.2
SPAN = queries.Params(EPOCH.date(), EPOCH.date() + dt.timedelta(days=1))


@dataclasses.dataclass
class Planted:
    market: Market
    accepted: list[Truth]
    values: list[bytes]  # the lt.reports values the pipeline produced


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    path, keys = create_market_keyring(tmp_path_factory.mktemp("linking-keys"), ("sm4",))
    market = build_market(MarketConfig(seed=20251120, epoch_ms=int(EPOCH.timestamp() * 1000)))
    settings = Settings(pipeline=PipelineSettings(fingerprint_key=b"test-fingerprint-key-0123456789ab"))
    reference = ReferenceData.from_mapping(market.reference_data())
    processor = Processor(settings, Keyring.load(path, "production"), reference)
    config = PlanConfig(reports=REPORTS, missing_item_rate=MISSING_ITEM_RATE, ipv6_rate=0.0, seed=20251120)
    now = int(time.time() * 1000)
    accepted, values = [], []
    for offset, report in enumerate(plan_reports(market, keys, config)):
        result = processor.process(report.topic, 0, offset, report.key, report.value, now)
        assert result.code == report.truth.code, report.truth
        if result.code is None:
            accepted.append(report.truth)
            values += [o.value for o in result.outputs if o.topic == settings.topics.reports]
    assert len(values) == len(accepted)
    return Planted(market, accepted, values)


@dataclasses.dataclass
class Store:
    backend: Backend
    settings: ClickHouseSettings
    device_of: dict[str, str]  # stored fingerprint → the generator's device, through report IDs


@pytest.fixture(scope="module", params=["server", "chdb"])
def store(request: pytest.FixtureRequest, planted: Planted, clickhouse_settings: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:  # fmt: skip
    database = f"lt_test_{uuid.uuid4().hex[:10]}"
    if request.param == "server":
        settings = ClickHouseSettings(host=clickhouse_settings["host"], port=clickhouse_settings["port"],
                                      user=clickhouse_settings["user"], database=database)  # fmt: skip
    else:
        settings = ClickHouseSettings(host=None, path=tmp_path_factory.mktemp("chdb-linking"), database=database)
    backend = connect(settings)
    try:
        migrate(backend, Retention.from_settings(settings))
        values = planted.values
        batch = Batch(pending={"reports": list(values)}, first={("lt.reports", 0): 0},
                      last={("lt.reports", 0): len(values) - 1}, records=len(values))  # fmt: skip
        stats = SinkStats()
        assert Storer(backend, Backoff(0.1, 1.0), stats).store(batch, threading.Event(), retry=False)
        assert stats.skipped == 0
        assert backend.query(f"SELECT count() FROM {database}.reports FINAL").scalar() == len(values)
        device_by_report = {t.report_id: t.device_key for t in planted.accepted}
        device_of: dict[str, set[str]] = defaultdict(set)
        sql = f"SELECT report_id, device_fingerprint FROM {database}.reports FINAL WHERE device_fingerprint != ''"
        for report_id, fingerprint in backend.query(sql).rows:
            device_of[fingerprint].add(device_by_report[report_id])
        assert all(len(devices) == 1 for devices in device_of.values()), "a fingerprint is one device"
        yield Store(backend, settings, {fp: devices.pop() for fp, devices in device_of.items()})
    finally:
        backend.execute(f"DROP DATABASE IF EXISTS {database}")
        backend.close()
        if request.param == "chdb" and settings.path is not None:
            shutil.rmtree(settings.path, ignore_errors=True)


# --- the truth ------------------------------------------------------------------------------


def by_device(accepted: list[Truth]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for t in accepted:
        out[t.device_key].add(t.investor)
    return out


def by_fingerprint_state(accepted: list[Truth]) -> dict[tuple[str, tuple[str, ...]], set[str]]:
    """What counting fingerprints finds: a device with and without an item is two of them."""
    out: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    for t in accepted:
        out[(t.device_key, tuple(t.missing_items))].add(t.investor)
    return out


def shared(groups: dict[Any, set[str]], at_least: int = 2) -> dict[Any, set[str]]:
    return {k: v for k, v in groups.items() if len(v) >= at_least}


def test_the_market_splits_planted_shared_devices(planted: Planted) -> None:
    """The premise, from the truth alone: every planted sharer used the shared device, and some
    shared device was reported both with and without an item, so fingerprints alone get it wrong."""
    market = planted.market
    assert shared(by_device(planted.accepted)) == {d: set(inv) for d, inv in market.shared_devices.items()}
    split = [d for d in market.shared_devices
             if len({tuple(t.missing_items) for t in planted.accepted if t.device_key == d}) > 1]  # fmt: skip
    assert split, "no planted shared device was reported both with and without an item"
    per_fingerprint = sorted(map(sorted, shared(by_fingerprint_state(planted.accepted)).values()))
    assert per_fingerprint != sorted(map(sorted, market.shared_devices.values()))


# --- the queries ----------------------------------------------------------------------------


def fingerprints_by_device(store: Store) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for fingerprint, device in store.device_of.items():
        out[device].add(fingerprint)
    return out


def found_devices(store: Store, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Query rows by the generator's device; each row must be one whole device."""
    out = {}
    every = fingerprints_by_device(store)
    for r in rows:
        devices = {store.device_of[fp] for fp in r["fingerprints"]}
        assert len(devices) == 1, f"one row, several planted devices: {sorted(devices)}"
        device = devices.pop()
        assert r["device"] in r["fingerprints"]
        assert set(r["fingerprints"]) == every[device], "every fingerprint of the device is linked"
        assert device not in out, f"{device} reported twice"
        out[device] = r
    return out


def test_shared_devices_are_exactly_the_planted_ones(store: Store, planted: Planted) -> None:
    market, accepted = planted.market, planted.accepted
    expected = {d: set(inv) for d, inv in market.shared_devices.items()}
    found = found_devices(store, queries.run(store.backend, "shared-devices", SPAN).dicts())
    assert {d: set(r["investor_list"]) for d, r in found.items()} == expected
    kinds = {1: "WINDOWS", 2: "LINUX", 3: "MACOS", 4: "ANDROID", 5: "IOS", 6: "HARMONYOS", 7: "OTHER"}
    for device, r in found.items():
        assert r["investors"] == len(expected[device])
        assert r["brokers"] == len({i.split(":")[0] for i in expected[device]})
        assert r["reports"] == sum(1 for t in accepted if t.device_key == device)
        assert r["terminal_kind"] == kinds[market.devices[device].terminal_type]
        assert r["first_login"] <= r["last_login"]
    # The thresholds apply to devices, not fingerprints.
    wide = queries.run(store.backend, "shared-devices", dataclasses.replace(SPAN, min_accounts=3)).dicts()
    assert set(found_devices(store, wide)) == {d for d, inv in expected.items() if len(inv) >= 3}
    cross = queries.run(store.backend, "shared-devices", dataclasses.replace(SPAN, min_brokers=2)).dicts()
    assert set(found_devices(store, cross)) == {
        d for d, inv in expected.items() if len({i.split(":")[0] for i in inv}) >= 2
    }
    # By exchange: only the reports of investors holding a trading code there.
    codes = {market.investor_key(i): set(i.trading_codes) for i in market.investors}
    at_shfe = shared(by_device([t for t in accepted if "SHFE" in codes[t.investor]]))
    got = queries.run(store.backend, "shared-devices", dataclasses.replace(SPAN, exchange="SHFE")).dicts()
    assert {d: set(r["investor_list"]) for d, r in found_devices(store, got).items()} == at_shfe


def test_multi_device_investors(store: Store, planted: Planted) -> None:
    market, accepted = planted.market, planted.accepted
    used: dict[str, set[str]] = defaultdict(set)
    states: dict[str, set[tuple[str, tuple[str, ...]]]] = defaultdict(set)
    for t in accepted:
        used[t.investor].add(t.device_key)
        states[t.investor].add((t.device_key, tuple(t.missing_items)))
    expected = {inv: devices for inv, devices in used.items() if len(devices) >= 2}
    # Counting fingerprints would also list investors with one device reported with and without an item.
    assert {inv for inv, s in states.items() if len(s) >= 2} > set(expected)
    owners = {market.investor_key(i): i for i in market.investors}
    for inv, devices in expected.items():
        assert devices <= set(owners[inv].devices)  # their own devices and the shared ones they joined
    found = queries.run(store.backend, "multi-device-investors", SPAN).dicts()
    got = {f"{r['broker_id']}:{r['investor_id']}": r for r in found}
    assert len(got) == len(found)
    assert {inv: {store.device_of[fp] for fp in r["fingerprints"]} for inv, r in got.items()} == expected
    for inv, r in got.items():
        assert r["devices"] == len(r["device_list"]) == len(expected[inv])
        assert {store.device_of[fp] for fp in r["device_list"]} == expected[inv]
        assert r["reports"] == sum(1 for t in accepted if t.investor == inv)
    three = queries.run(store.backend, "multi-device-investors", dataclasses.replace(SPAN, min_accounts=3)).dicts()
    assert {f"{r['broker_id']}:{r['investor_id']}" for r in three} == {i for i, d in expected.items() if len(d) >= 3}


def test_shared_ips_count_devices(store: Store, planted: Planted) -> None:
    market = planted.market
    ip_of = {market.investor_key(i): i.public_ip for i in market.investors}
    investors: dict[str, set[str]] = defaultdict(set)
    devices: dict[str, set[str]] = defaultdict(set)
    for t in planted.accepted:
        if "W408" not in t.warnings:  # a W408 report carried a private address instead
            investors[ip_of[t.investor]].add(t.investor)
            devices[ip_of[t.investor]].add(t.device_key)
    expected = {ip: inv for ip, inv in investors.items() if len(inv) >= 2}
    assert expected and set(expected) <= set(market.shared_ips)
    found = queries.run(store.backend, "shared-ips", SPAN).dicts()
    assert {r["public_ip"]: set(r["investor_list"]) for r in found} == expected
    assert {r["public_ip"]: r["devices"] for r in found} == {ip: len(devices[ip]) for ip in expected}


def test_every_output_format(store: Store, planted: Planted, monkeypatch: pytest.MonkeyPatch,
                             capfdbinary: pytest.CaptureFixture[bytes]) -> None:  # fmt: skip
    """`lookthrough query shared-devices` in each format: the same devices as the query itself."""
    from pipeline.cli import main

    result = queries.run(store.backend, "shared-devices", SPAN)
    ch = store.settings
    command = ["query", "shared-devices", "--from", SPAN.date_from.isoformat(), "--to", SPAN.date_to.isoformat()]
    monkeypatch.setenv("LT_CLICKHOUSE_DATABASE", ch.database)
    if ch.host is not None:
        monkeypatch.setenv("LT_CLICKHOUSE_HOST", ch.host)
        monkeypatch.setenv("LT_CLICKHOUSE_PORT", str(ch.port))
    else:
        command += ["--store", str(ch.path)]
    outputs = {}
    for fmt in ("table", "csv", "json"):
        capfdbinary.readouterr()
        assert main([*command, "--format", fmt]) == 0
        outputs[fmt] = capfdbinary.readouterr().out.decode()
        assert outputs[fmt] == render(result, fmt)
    as_json = json.loads(outputs["json"])
    assert [set(r["investor_list"]) for r in as_json] == [set(r["investor_list"]) for r in result.dicts()]
    assert all(r["device"] in r["fingerprints"] for r in as_json)
    csv_lines = outputs["csv"].splitlines()
    assert csv_lines[0].split(",") == result.columns and len(csv_lines) == len(result.rows) + 1
    assert outputs["table"].rstrip().endswith(f"({len(planted.market.shared_devices)} rows)")
