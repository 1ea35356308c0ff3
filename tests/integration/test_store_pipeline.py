"""The analytics store on the real ClickHouse server (18.16) and on chdb, fed by real workers.

One generated market per module, spread over four trading days (a day in October, one in the
previous week, two in the reported week), run through two `lookthrough run` workers in an
isolated topic namespace; then the sink stores the namespace's topics into a fresh database on
each backend. Expected values come from the generator's truth (what it planted: which device and
IP each report used, which defect, which exchanges must receive it), never from the store.

The market is planned with items that could not be collected on some logins (`missing_item_rate`,
decided report by report: a device then reaches the store under two fingerprints, and the device
figures must still count it once), IPv6 substitution off (so a report's public IP is its
investor's), and W409 disabled in the workers (so warnings are exact).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import localrun
from pipeline.config import Settings
from pipeline.crypto.admin import export_public
from pipeline.crypto.files import make_private_dir, write_owner_only
from pipeline.generate import PlanConfig, plan_reports, truth_json
from pipeline.market import Market, MarketConfig, build_market
from pipeline.marketkeys import create_market_keyring
from pipeline.store import periodic, queries, report_output, tables
from pipeline.store.backend import Backend, connect
from pipeline.store.migrations import discover, migrate
from pipeline.store.periods import Period
from pipeline.store.policy import Retention
from pipeline.store.sink import Sink

from .pipeline_support import Namespace, drain, load_reference, namespace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EPOCH = dt.datetime(2025, 10, 30, 4, 0, tzinfo=dt.UTC)  # a Thursday
DAY_OFFSETS = (0, 14, 21, 22)  # 10-30 (October), 11-13 (previous week), 11-20 and 11-21 (Thu, Fri)
PER_DAY = 1500
DAY_SECONDS = 86_400
MISSING_ITEM_RATE = 0.2


# --- the market ---------------------------------------------------------------------------


@dataclasses.dataclass
class Generated:
    directory: Path
    market: Market
    truth: list[dict[str, Any]]
    keyring: str

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [t for t in self.truth if t["outcome"] == "accepted"]

    @property
    def days(self) -> list[dt.date]:
        return [EPOCH.date() + dt.timedelta(days=d) for d in DAY_OFFSETS]


def day_of(truth: dict[str, Any]) -> dt.date:
    return EPOCH.date() + dt.timedelta(days=truth["index"] // DAY_SECONDS)


def generate(out: Path) -> Generated:
    """Like `lookthrough generate`, with reports spread over DAY_OFFSETS.

    `plan_reports` numbers reports from 0, all on one morning; the planner's index is what sets
    a report's login time (09:00 + index seconds), so indices one day of seconds apart land
    reports on successive trading days, with unique report IDs, from one market and one plan.
    """
    make_private_dir(out / "keyring")
    keyring, keys = create_market_keyring(out / "keyring", ("x25519", "sm4"))
    write_owner_only(out / "public-keys.json", json.dumps(export_public(keyring, include_psk=True)).encode())
    market = build_market(MarketConfig(seed=20251030, epoch_ms=int(EPOCH.timestamp() * 1000)))
    (out / "reference").mkdir()
    for kind, records in market.reference_data().items():
        (out / "reference" / f"{kind}.json").write_text(json.dumps(records, ensure_ascii=False))
    config = PlanConfig(reports=PER_DAY * len(DAY_OFFSETS), defect_rate=0.006, missing_item_rate=MISSING_ITEM_RATE,
                        ipv6_rate=0.0, seed=20251030)  # fmt: skip
    indices = (offset * DAY_SECONDS + j for offset in DAY_OFFSETS for j in range(PER_DAY))
    truth = []
    with open(out / "ingress.jsonl", "w") as ingress:
        for planned in plan_reports(market, keys, config, indices):
            ingress.write(planned.to_json() + "\n")
            truth.append(json.loads(truth_json(planned.truth)))
    return Generated(out, market, truth, str(keyring))


@dataclasses.dataclass
class Run:
    generated: Generated
    ns: Namespace


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The market through two real workers; the namespace stays open for the sinks."""
    generated = generate(tmp_path_factory.mktemp("store-market"))
    with namespace(kafka_bootstrap, tmp_path_factory.mktemp("store-ns"), generated.keyring) as ns:
        ns.env["LT_PIPELINE_SHARING_MAX_INVESTORS"] = "1000"  # no W409: warnings stay exact
        load_reference(ns.settings, generated.directory)
        ns.start_worker("a")
        ns.start_worker("b")
        localrun.feed(ns.settings, generated.directory / "ingress.jsonl")
        drain(ns, generated.truth, timeout=300)
        assert ns.stop_workers() == [0, 0], ns.worker_logs()[-2000:]
        yield Run(generated, ns)


def store_settings(ns: Namespace, **clickhouse: Any) -> Settings:
    settings = Settings.from_env()  # the namespace's topics (its variables are set while it is open)
    return dataclasses.replace(settings, clickhouse=dataclasses.replace(settings.clickhouse, **clickhouse))


def sink_into(settings: Settings, backend: Backend, group: str) -> dict[str, int]:
    stats = Sink(settings, backend, group=group).run(until_caught_up=True, timeout_s=240)
    return stats.rows


@dataclasses.dataclass
class Store:
    backend: Backend
    settings: Settings


@pytest.fixture(scope="module", params=["server", "chdb"])
def store(request: pytest.FixtureRequest, run: Run, clickhouse_settings: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:  # fmt: skip
    """A fresh database on the backend, migrated twice, filled by one sink run. The module's
    tests run on the server first, then on chdb (pytest groups a module fixture's parameters)."""
    database = f"lt_test_{uuid.uuid4().hex[:10]}"
    if request.param == "server":
        settings = store_settings(run.ns, host=clickhouse_settings["host"], port=clickhouse_settings["port"],
                                  user=clickhouse_settings["user"], database=database)  # fmt: skip
    else:
        path = tmp_path_factory.mktemp("chdb-store")
        settings = store_settings(run.ns, host=None, path=path, database=database)
    backend = connect(settings.clickhouse)
    try:
        retention = Retention.from_settings(settings.clickhouse)
        assert migrate(backend, retention) == [m.version for m in discover()]
        assert migrate(backend, retention) == [], "a second migration run applies nothing"
        rows = sink_into(settings, backend, f"{run.ns.settings.kafka.group}.{database}")
        assert rows["reports"] == len(run.generated.accepted)
        yield Store(backend, settings)
    finally:
        backend.execute(f"DROP DATABASE IF EXISTS {database}")
        backend.close()
        if request.param == "chdb":
            shutil.rmtree(settings.clickhouse.path, ignore_errors=True)


# --- stored rows ----------------------------------------------------------------------------


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return store.backend.query(sql.format(db=store.backend.database)).rows


def test_rows_equal_ground_truth(store: Store, run: Run) -> None:
    truth = run.generated.truth
    accepted = {t["report_id"]: t for t in truth if t["outcome"] == "accepted"}
    stored = Counter(r for (r,) in rows(store, "SELECT report_id FROM {db}.reports FINAL"))
    assert set(stored) == set(accepted) and max(stored.values()) == 1

    expected_deliveries = {(ex, t["report_id"], code) for t in accepted.values() for ex, code in t["exchanges"].items()}
    delivered = rows(store, "SELECT exchange, report_id, trading_code FROM {db}.deliveries FINAL")
    assert len(delivered) == len(expected_deliveries) and set(delivered) == expected_deliveries

    assert Counter(c for (c,) in rows(store, "SELECT error_code FROM {db}.dlq FINAL")) == Counter(
        t["code"] for t in truth if t["outcome"] == "rejected"
    )
    # Stored values come from the record, not invented: trading days, brokers and warnings.
    for report_id, day, broker, warnings in rows(
        store, "SELECT report_id, trading_day, broker_id, warnings FROM {db}.reports FINAL"
    ):
        t = accepted[report_id]
        assert (day, broker, sorted(warnings)) == (day_of(t), t["broker_id"], t["warnings"]), report_id


def test_replay_adds_no_visible_duplicates(store: Store, run: Run) -> None:
    def figures() -> dict[str, Any]:
        out: dict[str, Any] = {
            table: rows(store, f"SELECT count() FROM {{db}}.{table} FINAL")[0][0]
            for table in ("reports", "deliveries", "dlq")
        }
        span = all_days()
        for name in queries.QUERIES:
            out[name] = queries.run(store.backend, name, span).rows
        week = periodic.build(store.backend, "SHFE", "weekly", dt.date(2025, 11, 20))
        out["weekly"] = report_output.table(week)
        return out

    before = figures()
    raw_before = rows(store, "SELECT count() FROM {db}.reports")[0][0]
    replayed = sink_into(store.settings, store.backend, f"{run.ns.settings.kafka.group}.replay-{uuid.uuid4().hex[:6]}")
    assert replayed["reports"] == len(run.generated.accepted), "the replay reread the whole range"
    # The replay's rows are physically there until a merge collapses them; analysts never see them.
    assert rows(store, "SELECT count() FROM {db}.reports")[0][0] >= raw_before
    assert figures() == before


# --- analytics ------------------------------------------------------------------------------


def all_days() -> queries.Params:
    # dead letters carry the China date of their failure, a day ahead of the UTC date from 16:00 UTC
    return queries.Params(EPOCH.date(), tables.china_today())


def device_of_fingerprint(store: Store, run: Run) -> dict[str, str]:
    """Fingerprint → the generator's device key, through the stored reports' IDs."""
    by_id = {t["report_id"]: t["device_key"] for t in run.generated.accepted}
    mapping: dict[str, set[str]] = defaultdict(set)
    for report_id, fingerprint in rows(store, "SELECT report_id, device_fingerprint FROM {db}.reports FINAL"):
        mapping[fingerprint].add(by_id[report_id])
    assert all(len(devices) == 1 for devices in mapping.values()), "a fingerprint is one device"
    return {fp: next(iter(devices)) for fp, devices in mapping.items()}


def investors_by_device(accepted: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for t in accepted:
        out[t["device_key"]].add(t["investor"])
    return out


def test_shared_devices_are_exactly_the_planted_ones(store: Store, run: Run) -> None:
    market = run.generated.market
    devices = device_of_fingerprint(store, run)
    expected = {d: inv for d, inv in investors_by_device(run.generated.accepted).items() if len(inv) >= 2}
    assert expected and set(expected) <= set(market.shared_devices)
    for device, investors in expected.items():
        assert investors <= set(market.shared_devices[device])
    found = queries.run(store.backend, "shared-devices", all_days()).dicts()
    assert {devices[r["device"]]: set(r["investor_list"]) for r in found} == expected
    assert all(r["investors"] == len(r["investor_list"]) for r in found)
    assert all(r["brokers"] == len({i.split(":")[0] for i in r["investor_list"]}) for r in found)
    # Raising the bar keeps exactly the wider ones; brokers filter likewise.
    wide = queries.run(store.backend, "shared-devices", dataclasses.replace(all_days(), min_accounts=3)).dicts()
    assert {devices[r["device"]] for r in wide} == {d for d, inv in expected.items() if len(inv) >= 3}
    cross = queries.run(store.backend, "shared-devices", dataclasses.replace(all_days(), min_brokers=2)).dicts()
    assert {devices[r["device"]] for r in cross} == {
        d for d, inv in expected.items() if len({i.split(":")[0] for i in inv}) >= 2
    }
    # By exchange: only reports of investors holding a trading code there.
    codes = {market.investor_key(i): set(i.trading_codes) for i in market.investors}
    at_shfe = [t for t in run.generated.accepted if "SHFE" in codes[t["investor"]]]
    want = {d: inv for d, inv in investors_by_device(at_shfe).items() if len(inv) >= 2}
    got = queries.run(store.backend, "shared-devices", dataclasses.replace(all_days(), exchange="SHFE")).dicts()
    assert {devices[r["device"]]: set(r["investor_list"]) for r in got} == want


def test_multi_device_investors(store: Store, run: Run) -> None:
    devices = device_of_fingerprint(store, run)
    per_investor: dict[str, set[str]] = defaultdict(set)
    for t in run.generated.accepted:
        per_investor[t["investor"]].add(t["device_key"])
    expected = {inv: d for inv, d in per_investor.items() if len(d) >= 2}
    found = queries.run(store.backend, "multi-device-investors", all_days()).dicts()
    assert {f"{r['broker_id']}:{r['investor_id']}": {devices[fp] for fp in r["device_list"]} for r in found} == expected
    market = run.generated.market
    for inv, devs in expected.items():  # the planted ones: own devices plus shared devices joined
        owner = next(i for i in market.investors if market.investor_key(i) == inv)
        assert devs <= set(owner.devices)


def test_shared_ips_are_exactly_the_planted_ones(store: Store, run: Run) -> None:
    market = run.generated.market
    ip_of = {market.investor_key(i): i.public_ip for i in market.investors}
    by_ip: dict[str, set[str]] = defaultdict(set)
    for t in run.generated.accepted:
        if "W408" not in t["warnings"]:  # a W408 report carried a private address instead
            by_ip[ip_of[t["investor"]]].add(t["investor"])
    expected = {ip: inv for ip, inv in by_ip.items() if len(inv) >= 2}
    assert expected and set(expected) <= set(market.shared_ips)
    found = queries.run(store.backend, "shared-ips", all_days()).dicts()
    assert {r["public_ip"]: set(r["investor_list"]) for r in found} == expected


def test_relay_concentration(store: Store, run: Run) -> None:
    accepted = run.generated.accepted
    relayed = Counter(t["app_ids"][1] for t in accepted if len(t["app_ids"]) == 2)
    found = queries.run(store.backend, "relay-concentration", all_days()).dicts()
    got: Counter[str] = Counter()
    for r in found:
        got[r["relay_app_id"]] += r["reports"]
        assert r["share_of_relayed"] == round(r["reports"] / sum(relayed.values()), 4)
        assert r["share_of_all"] == round(r["reports"] / len(accepted), 4)
    assert got == relayed


def test_collection_quality(store: Store, run: Run) -> None:
    expected: dict[str, dict[str, Any]] = {}
    for t in run.generated.accepted:
        app = t["app_ids"][0]
        e = expected.setdefault(app, {"reports": 0, "incomplete": 0, "w406": 0, "items": Counter()})
        e["reports"] += 1
        e["w406"] += "W406" in t["warnings"]
        if t["missing_items"]:
            e["incomplete"] += 1
            e["items"].update(t["missing_items"])
    got: dict[str, dict[str, Any]] = {}
    for r in queries.run(store.backend, "collection-quality", all_days()).dicts():
        g = got.setdefault(r["app_id"], {"reports": 0, "incomplete": 0, "w406": 0, "items": Counter()})
        g["reports"] += r["reports"]
        g["incomplete"] += r["incomplete"]
        g["w406"] += r["w406"]
        g["items"].update(r["failed_items"])
        planted = r["app_id"] in ("ZZ_GHOST_V0.1", "CT_NARROW_V1.0")  # planted with any vendor
        assert planted or r["app_id"].startswith(r["vendor_id"][:2])
    assert got == expected


def test_unregistered_and_unauthorized_apps_by_broker(store: Store, run: Run) -> None:
    expected: Counter[tuple[str, str, str]] = Counter()
    for t in run.generated.accepted:
        for code in ("W402", "W403"):
            if code in t["warnings"]:
                expected[(t["broker_id"], code, t["app_ids"][0])] += 1
    assert {code for _, code, _ in expected} == {"W402", "W403"}
    found = queries.run(store.backend, "app-authorization", all_days()).dicts()
    assert Counter({(r["broker_id"], r["code"], r["app_id"]): r["reports"] for r in found}) == expected
    assert {r["app_id"] for r in found if r["code"] == "W402"} == {"ZZ_GHOST_V0.1"}


def test_time_skew(store: Store, run: Run) -> None:
    accepted = run.generated.accepted
    found = {r["broker_id"]: r for r in queries.run(store.backend, "time-skew", all_days()).dicts()}
    brokers = Counter(t["broker_id"] for t in accepted)
    w407 = Counter(t["broker_id"] for t in accepted if "W407" in t["warnings"])
    assert {b: r["reports"] for b, r in found.items()} == dict(brokers)
    assert {b: r["w407"] for b, r in found.items() if r["w407"]} == dict(w407)
    for r in found.values():
        assert r["over_threshold"] == r["w407"]  # the generator skews W407 reports by 10 minutes
        assert r["p50_s"] <= 31 and (r["max_s"] == 600 if r["w407"] else r["max_s"] <= 31)
        assert r["under_1m"] + r["from_1m_to_5m"] + r["from_5m_to_15m"] + r["over_15m"] == r["reports"]


def test_reject_rates(store: Store, run: Run) -> None:
    truth = run.generated.truth
    per_reporter = Counter(t["reporter_id"] for t in truth)
    rejected = [t for t in truth if t["outcome"] == "rejected"]
    rejects = Counter((t["reporter_id"], t["code"]) for t in rejected)
    per_reporter_rejects = Counter(t["reporter_id"] for t in rejected)
    found = queries.run(store.backend, "reject-rates", all_days()).dicts()
    assert Counter({(r["reporter_id"], r["error_code"]): r["rejects"] for r in found}) == rejects
    for r in found:
        assert r["reporter_reports"] == per_reporter[r["reporter_id"]]
        assert r["reporter_rejects"] == per_reporter_rejects[r["reporter_id"]]
        assert r["reject_rate"] == round(r["rejects"] / r["reporter_reports"], 6)
    with pytest.raises(Exception, match="cannot be filtered by exchange"):
        queries.run(store.backend, "reject-rates", dataclasses.replace(all_days(), exchange="SHFE"))


# --- periodic reports -----------------------------------------------------------------------


ADDITIVE = [m.key for m in periodic.METRICS if m.kind == "additive"]
DISTINCT = [m.key for m in periodic.METRICS if m.kind == "distinct"]


def expected_lines(run: Run, exchange: str, period: Period) -> dict[tuple[str, str], dict[str, Any]]:
    """Per line of the report (kind, label) with data: the additive figures and the distinct sets
    (trading codes, the generator's devices, and the fingerprint states a device was reported in)
    of the reports delivered to `exchange` in `period`, from the truth."""
    groups = {inv.broker_id: periodic.GROUPS[inv.reporter_type] for inv in run.generated.market.investors}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for t in run.generated.accepted:
        if exchange not in t["exchanges"] or not period.start <= day_of(t) <= period.end:
            continue
        member = t["broker_id"]
        for line in (("member", member), ("subtotal", groups[member]), ("total", "总计")):
            e = out.setdefault(line, {"reports": 0, "relay_reports": 0, "warned": 0, "investors": set(),
                                      "devices": set(), "fingerprints": set()})  # fmt: skip
            e["reports"] += 1
            e["relay_reports"] += len(t["app_ids"]) == 2
            e["warned"] += bool(t["warnings"])
            e["investors"].add(t["exchanges"][exchange])
            e["devices"].add(t["device_key"])
            e["fingerprints"].add((t["device_key"], tuple(t["missing_items"])))
    return out


def figures_of(expected: dict[str, Any]) -> dict[str, int]:
    return {key: len(v) if isinstance(v, set) else v for key, v in expected.items() if key != "fingerprints"}


def expected_rejects(run: Run, period: Period) -> Counter[str]:
    """Rejects per member (broker) in `period`; an unreadable envelope (E101) is dated by its
    rejection, today, so it falls outside these 2025 periods."""
    return Counter(
        t["broker_id"] for t in run.generated.truth
        if t["outcome"] == "rejected" and t["code"] != "E101" and period.start <= day_of(t) <= period.end
    )  # fmt: skip


EXCHANGES = ["SHFE", "DCE", "CFFEX"]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_periodic_reports_add_up_and_match_the_truth(store: Store, run: Run, exchange: str) -> None:
    check_periodic_reports(store.backend, run, exchange)
    # The premise: counting fingerprints would get 设备数 wrong, some device was reported both with
    # and without an item in the month.
    month = expected_lines(run, exchange, Period.of("monthly", dt.date(2025, 11, 20)))
    assert len(month[("total", "总计")]["fingerprints"]) > len(month[("total", "总计")]["devices"])


def check_periodic_reports(backend: Backend, run: Run, exchange: str) -> None:
    """The daily, weekly and monthly reports of `exchange` around 2025-11-20 against the truth."""
    reported_day = dt.date(2025, 11, 20)
    days_of_week = (dt.date(2025, 11, 20), dt.date(2025, 11, 21))
    daily_reports = {day: periodic.build(backend, exchange, "daily", day) for day in days_of_week}
    weekly = periodic.build(backend, exchange, "weekly", reported_day)
    monthly = periodic.build(backend, exchange, "monthly", reported_day)
    for report in (*daily_reports.values(), weekly, monthly):
        check_subtotals(report)
        expected = expected_lines(run, exchange, report.period)
        rejects = expected_rejects(run, report.period)
        lines = {(line.kind, line.label): line.current for line in report.lines}
        assert set(expected) <= set(lines)
        for (kind, label), figures in lines.items():
            want = {**dict.fromkeys(ADDITIVE + DISTINCT, 0), **figures_of(expected.get((kind, label), {}))}
            if kind == "member":
                want["rejects"] = rejects[label]
            else:  # the sum of the lines' rejects: check_subtotals
                del want["rejects"]
            assert {k: figures[k] for k in want} == want, (report.period, kind, label)
    # A week is the sum of its days (the other days of that week have no data) for the additive
    # figures; distinct figures count an investor or device once per week, at most the sum.
    for line in weekly.lines:
        days = [next(x for x in d.lines if (x.kind, x.label) == (line.kind, line.label))
                for d in daily_reports.values()]  # fmt: skip
        for key in ADDITIVE:
            assert line.current[key] == sum(d.current[key] for d in days), (line.label, key)
        for key in DISTINCT:
            assert max(d.current[key] for d in days) <= line.current[key] <= sum(d.current[key] for d in days)
    # Change against the previous period: the previous week holds 11-13, the previous month October.
    for report, previous_day in ((weekly, dt.date(2025, 11, 13)), (monthly, dt.date(2025, 10, 30))):
        before = periodic.build(backend, exchange, "daily", previous_day)
        total_before = next(line for line in before.lines if line.kind == "total")
        total = next(line for line in report.lines if line.kind == "total")
        assert total.previous is not None
        for key in ADDITIVE + DISTINCT:
            assert total.previous[key] == total_before.current[key]
            assert total.change(key) == total.current[key] - total_before.current[key]


def test_old_periods_of_a_store_migrated_before_the_device_sightings(store: Store, run: Run) -> None:
    """A store that kept the periodic reports' aggregates before migration 006 (exchange_devices),
    whose deliveries before 11-20 had expired when 006 was applied: the deliveries still held
    and, for the older days, the reports fill the device sightings, so every period still
    matches the truth."""
    settings = dataclasses.replace(store.settings.clickhouse, database=f"{store.backend.database}_old")
    old = connect(settings)
    try:
        retention = Retention.from_settings(settings)
        before = [m for m in discover() if m.name != "exchange_devices"]
        assert migrate(old, retention, before) == [m.version for m in before]
        source = store.backend.database
        for table in ("reports", "dlq", "exchange_daily"):
            old.execute(f"INSERT INTO {old.database}.{table} SELECT * FROM {source}.{table}")
        old.execute(f"INSERT INTO {old.database}.deliveries SELECT * FROM {source}.deliveries "
                    f"WHERE trading_day >= '2025-11-20'")  # fmt: skip
        assert migrate(old, retention) == [m.version for m in discover() if m.name == "exchange_devices"]
        for exchange in EXCHANGES:
            check_periodic_reports(old, run, exchange)
    finally:
        old.execute(f"DROP DATABASE IF EXISTS {settings.database}")
        old.close()


def check_subtotals(report: periodic.PeriodicReport) -> None:
    lines = report.lines
    assert lines[-1].kind == "total"
    groups: dict[str, list[periodic.Line]] = defaultdict(list)
    for line in lines:
        if line.kind == "member":
            groups[line.group].append(line)
    subtotals = {line.group: line for line in lines if line.kind == "subtotal"}
    assert set(subtotals) == set(groups)
    for group, members in groups.items():
        for key in ADDITIVE:
            assert subtotals[group].current[key] == sum(m.current[key] for m in members)
        for key in DISTINCT:
            assert max(m.current[key] for m in members) <= subtotals[group].current[key] <= sum(
                m.current[key] for m in members)  # fmt: skip
        if subtotals[group].current["reports"]:
            ratio = subtotals[group].current["relay_reports"] / subtotals[group].current["reports"]
            assert subtotals[group].current["relay_share"] == pytest.approx(ratio)
    total = lines[-1]
    for key in ADDITIVE:
        assert total.current[key] == sum(s.current[key] for s in subtotals.values())
    # Trading codes belong to one member, so investors add up exactly; devices can be shared.
    assert total.current["investors"] == sum(s.current["investors"] for s in subtotals.values())


def test_report_files(store: Store, tmp_path: Path) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    from pipeline.store import chart

    report = periodic.build(store.backend, "SHFE", "weekly", dt.date(2025, 11, 20))
    text = report_output.to_csv(report).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == report_output.header(report)
    assert [row[0] for row in table[1:]].count("小计") == 2 and table[-1][0] == "总计"
    (tmp_path / "r.xlsx").write_bytes(report_output.to_xlsx(report))
    sheet = load_workbook(tmp_path / "r.xlsx").active
    assert sheet is not None and sheet["A1"].value == report.title
    assert [c.value for c in sheet[2]] == report_output.header(report)
    png = chart.png(report)
    assert png.startswith(b"\x89PNG")
    page = report_output.to_html(report, png).decode()
    assert "总计" in page and "data:image/png;base64," in page


def test_cli_query_and_report(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capfdbinary: pytest.CaptureFixture[bytes]) -> None:  # fmt: skip
    """The commands an analyst runs: in a separate process against the server; in this process
    against chdb (which holds one store per process, shared here with the fixture's session)."""
    import subprocess
    import sys

    from pipeline.cli import main

    ch = store.settings.clickhouse
    span = ["--from", "2025-10-01", "--to", "2025-12-31"]
    target = tmp_path / "weekly.html"
    report = ["report", "weekly", "--exchange", "SHFE", "--date", "2025-11-20", "--format", "html",
              "--out", str(target)]
    query = ["query", "shared-ips", *span, "--format", "json"]
    if ch.host is not None:
        env = {**os.environ, "LT_CLICKHOUSE_HOST": ch.host, "LT_CLICKHOUSE_PORT": str(ch.port),
               "LT_CLICKHOUSE_DATABASE": ch.database}  # fmt: skip
        base = [sys.executable, "-m", "pipeline"]
        out = subprocess.run([*base, *query], env=env, capture_output=True, timeout=120, check=True).stdout
        subprocess.run([*base, *report], env=env, capture_output=True, timeout=120, check=True)
        # A database that was never migrated: the way to make one, not UNKNOWN_DATABASE.
        never = subprocess.run([*base, *query], env={**env, "LT_CLICKHOUSE_DATABASE": "lt_never_migrated"},
                               capture_output=True, timeout=120, text=True)  # fmt: skip
        assert never.returncode == 2
        assert "no lookthrough store in the database lt_never_migrated at" in never.stderr
        assert "store migrate" in never.stderr
    else:
        monkeypatch.setenv("LT_CLICKHOUSE_DATABASE", ch.database)
        capfdbinary.readouterr()
        assert main([*query, "--store", str(ch.path)]) == 0
        out = capfdbinary.readouterr().out
        assert main([*report, "--store", str(ch.path)]) == 0
        # A mistyped store directory: the way to make a store, and no new empty one.
        missing = tmp_path / "no-such-store"
        assert main([*query, "--store", str(missing)]) == 2
        assert b"store migrate" in capfdbinary.readouterr().err
        assert not missing.exists()
    expected = queries.run(store.backend, "shared-ips", queries.Params(dt.date(2025, 10, 1), dt.date(2025, 12, 31)))
    assert [(r["public_ip"], r["investor_list"]) for r in json.loads(out)] == [
        (r["public_ip"], r["investor_list"]) for r in expected.dicts()
    ]
    assert target.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "总计" in target.read_text(encoding="utf-8")
