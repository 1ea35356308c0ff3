"""The exchanges' periodic tables: per exchange and period, one line per member, 小计 and 总计.

Shaped like the exchange's daily, weekly and monthly tables (seed 001): lines grouped (futures
companies, then non-futures-company members reported by the exchange), a 小计 after each group,
a 总计 at the end, and for weeks and months the change against the previous period. Figures:

* additive, they add up over lines, groups and days: reports delivered to the exchange, relayed
  reports, reports carrying warnings, and rejects of the member's reports (a rejected report was
  never routed, so rejects count the member's rejects of the period, whatever the exchange);
* distinct over the line's scope and the whole period: investors (trading codes) and devices;
  a device shared across members counts once in 小计 and 总计, and a week counts an investor or
  a device once however many days it was seen, so these are at most the sum of their parts;
* the relay share, relayed / reports, recomputed at every level.

Devices are physical devices, not fingerprints: the fingerprints delivered to the exchange in the
period (`exchange_devices`) are linked over the exchange's whole period by the identifiers that
`reports` keeps beside them (`pipeline.store.devices.link_days`), so a device reported with and
without its BIOS serial counts once. Everything else is read from `exchange_daily` (its
`devices` state counts fingerprints and is not read) and `dlq`; all of these are kept 20 years.
`build` returns plain data for the renderers in `pipeline.store.report_output`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.store.backend import Backend
from pipeline.store.devices import IDENTIFIERS_SQL, Observation, link_days
from pipeline.store.errors import StoreError
from pipeline.store.periods import Period
from pipeline.store.sqltext import literal


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    label: str
    kind: str  # additive | distinct | ratio


METRICS = (
    Metric("reports", "报送数", "additive"),
    Metric("investors", "投资者数", "distinct"),
    Metric("devices", "设备数", "distinct"),
    Metric("relay_reports", "中继报送数", "additive"),
    Metric("relay_share", "中继占比", "ratio"),
    Metric("warned", "告警报送数", "additive"),
    Metric("rejects", "拒收数", "additive"),
)
GROUPS = {"FUTURES_COMPANY": "期货公司", "EXCHANGE": "非期货公司会员"}
NOTES = (
    "注: 报送数、中继报送数、告警报送数、拒收数按报送计, 可逐行、逐组、逐日相加; "
    "投资者数按交易编码、设备数按设备在本行范围和本期内去重 (同一设备因部分采集项缺失而有多个设备指纹的, "
    "按相同的硬件标识关联为一台), 故小计、总计及周、月数不大于各部分之和; "
    "中继占比 = 中继报送数 / 报送数; 拒收的报送未经路由, 拒收数为该会员本期全部拒收。"
)
Figures = dict[str, float]


@dataclass
class Line:
    kind: str  # "member" | "subtotal" | "total"
    group: str  # reporter type, '' for the total
    label: str  # member ID, group name, or 总计
    current: Figures
    previous: Figures | None

    def change(self, key: str) -> float | None:
        if self.previous is None:
            return None
        return self.current[key] - self.previous[key]


@dataclass
class PeriodicReport:
    exchange: str
    period: Period
    lines: list[Line]
    days: list[tuple[dt.date, int]]  # reports per trading day of the period, for the chart

    @property
    def with_change(self) -> bool:
        return self.period.kind != "daily"

    @property
    def title(self) -> str:
        return f"{self.exchange} 看穿式监管数据{self.period.name}报表 {self.period.title}"


_MERGED = """
    uniqExactMerge(reports) AS reports,
    uniqExactMerge(investors) AS investors,
    uniqExactIfMerge(relay_reports) AS relay_reports,
    uniqExactIfMerge(warned_reports) AS warned"""


def _days(period: Period) -> str:
    return f"trading_day >= {literal(period.start)} AND trading_day <= {literal(period.end)}"


def _where(exchange: str, period: Period) -> str:
    return f"exchange = {literal(exchange)} AND {_days(period)}"


Scope = tuple[str, ...]  # (member, reporter type), (reporter type,) or () for the total


def _figures(backend: Backend, exchange: str, period: Period, keys: Scope,
             devices: Mapping[Scope, int]) -> dict[Scope, Figures]:  # fmt: skip
    """exchange_daily's figures per value of `keys`, with the linked `devices` of that scope."""
    select = "".join(f"{k}, " for k in keys)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    sql = f"SELECT {select}{_MERGED} FROM {backend.database}.exchange_daily WHERE {_where(exchange, period)}{group}"
    out: dict[Scope, Figures] = {}
    for row in backend.query(sql).dicts():
        key = tuple(str(row.pop(k)) for k in keys)
        out[key] = {k: float(v) for k, v in row.items()}
        out[key]["devices"] = float(devices.get(key, 0))
    return out


@dataclass(frozen=True, slots=True)
class _Sighting:
    """A fingerprint among a member's reports delivered to the exchange on one trading day."""

    day: dt.date
    member: str
    reporter_type: str
    fingerprint: str
    terminal_kind: str


def _sightings(backend: Backend, exchange: str, period: Period) -> list[_Sighting]:
    sql = (f"SELECT DISTINCT trading_day, member_id, reporter_type, device_fingerprint, terminal_kind "
           f"FROM {backend.database}.exchange_devices WHERE {_where(exchange, period)}")  # fmt: skip
    return [_Sighting(day, str(m), str(r), str(fp), str(k)) for day, m, r, fp, k in backend.query(sql).rows]


def _identifiers(backend: Backend, exchange: str, period: Period) -> dict[str, dict[str, str]]:
    """Fingerprint → its identifier columns, for the fingerprints `_sightings` returns."""
    db = backend.database
    fingerprints = f"SELECT device_fingerprint FROM {db}.exchange_devices WHERE {_where(exchange, period)}"
    # A delivered report is in `reports` under the same trading day: the period bounds the scan.
    where = f"{_days(period)} AND device_fingerprint IN ({fingerprints})"
    rows = backend.query(IDENTIFIERS_SQL.format(db=db, where=where)).dicts()
    return {str(r["device_fingerprint"]): r for r in rows}


def _devices(backend: Backend, exchange: str, period: Period) -> dict[Scope, int]:
    """Devices per scope: the period's fingerprints for `exchange`, linked over all its members
    and days (`link_days`), so a device counts once wherever and whenever it was seen.

    A fingerprint whose reports are not in `reports` (none should be) has no identifiers, so it
    is a device of its own, as `link` treats any observation that shares nothing.
    """
    sightings = _sightings(backend, exchange, period)
    identifiers = _identifiers(backend, exchange, period)
    days: dict[dt.date, list[Observation]] = defaultdict(list)
    for s in sightings:
        days[s.day].append(Observation.of(s.fingerprint, s.terminal_kind, identifiers.get(s.fingerprint, {})))
    device = link_days(days.values())
    scopes: dict[Scope, set[str]] = defaultdict(set)
    for s in sightings:
        for scope in ((s.member, s.reporter_type), (s.reporter_type,), ()):
            scopes[scope].add(device[s.fingerprint])
    return {scope: len(names) for scope, names in scopes.items()}


def _rejects(backend: Backend, period: Period) -> dict[str, int]:
    sql = (
        f"SELECT broker_id, uniqExact(concat(source_topic, ':', toString(source_partition), ':', "
        f"toString(source_offset))) AS rejects FROM {backend.database}.dlq "
        f"WHERE day >= {literal(period.start)} AND day <= {literal(period.end)} GROUP BY broker_id"
    )
    return {str(broker): int(n) for broker, n in backend.query(sql).rows}


@dataclass
class _PeriodData:
    members: dict[Scope, Figures]
    groups: dict[Scope, Figures]
    total: Figures
    rejects: dict[str, int]


def _load(backend: Backend, exchange: str, period: Period) -> _PeriodData:
    devices = _devices(backend, exchange, period)
    return _PeriodData(
        _figures(backend, exchange, period, ("member_id", "reporter_type"), devices),
        _figures(backend, exchange, period, ("reporter_type",), devices),
        _figures(backend, exchange, period, (), devices).get((), {}),
        _rejects(backend, period),
    )


_ZERO: Figures = {"reports": 0.0, "investors": 0.0, "devices": 0.0, "relay_reports": 0.0, "warned": 0.0}


def _complete(figures: Figures | None, rejects: float) -> Figures:
    out = dict(figures if figures else _ZERO)
    out["rejects"] = rejects
    out["relay_share"] = out["relay_reports"] / out["reports"] if out["reports"] else 0.0
    return out


def build(backend: Backend, exchange: str, kind: str, day: dt.date) -> PeriodicReport:
    """The report of `exchange` for the `kind` period containing `day`."""
    if not exchange.isalnum():
        raise StoreError(f"exchange {exchange!r} must be letters and digits")
    period = Period.of(kind, day)
    now = _load(backend, exchange, period)
    before = _load(backend, exchange, period.previous()) if kind != "daily" else None
    kinds: dict[str, str] = {}
    for data in (before, now):  # the current period's reporter type wins
        if data is not None:
            kinds.update({member: rtype for member, rtype in data.members})

    def member_figures(data: _PeriodData, member: str) -> Figures:
        return _complete(data.members.get((member, kinds[member])), data.rejects.get(member, 0))

    lines: list[Line] = []
    ordered = [g for g in GROUPS if g in kinds.values()] + sorted(set(kinds.values()) - set(GROUPS))
    for group in ordered:
        members = sorted(m for m, g in kinds.items() if g == group)
        for m in members:
            lines.append(Line("member", group, m, member_figures(now, m),
                              member_figures(before, m) if before else None))  # fmt: skip

        def subtotal(data: _PeriodData, group: str = group, members: list[str] = members) -> Figures:
            return _complete(data.groups.get((group,)), sum(data.rejects.get(m, 0) for m in members))

        lines.append(Line("subtotal", group, GROUPS.get(group, group), subtotal(now),
                          subtotal(before) if before else None))  # fmt: skip

    def total(data: _PeriodData) -> Figures:
        return _complete(data.total if data.total.get("reports") else None,
                         sum(data.rejects.get(m, 0) for m in kinds))  # fmt: skip

    lines.append(Line("total", "", "总计", total(now), total(before) if before else None))
    return PeriodicReport(exchange, period, lines, _daily(backend, exchange, period))


def _daily(backend: Backend, exchange: str, period: Period) -> list[tuple[dt.date, int]]:
    sql = (f"SELECT trading_day, uniqExactMerge(reports) AS reports FROM {backend.database}.exchange_daily "
           f"WHERE {_where(exchange, period)} GROUP BY trading_day ORDER BY trading_day")  # fmt: skip
    return [(day, int(n)) for day, n in backend.query(sql).rows]
