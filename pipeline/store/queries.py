"""Named, parameterized look-through analytics over the store (`lookthrough query <name>`).

Every query takes a trading-day range (inclusive), an optional exchange (records of investors
holding a trading code there) and a minimum group size (`min_accounts`: investors per device or
IP, devices per investor). Queries read FINAL or count distinct keys, so rows stored twice by a
replay are never counted twice. The SQL runs unchanged on ClickHouse 18.16 and on current
ClickHouse. `run(backend, name, params)` returns a QueryResult; unknown names raise StoreError.

The device-centric queries (shared-devices, multi-device-investors, the devices of shared-ips) count
physical devices, not fingerprints: SQL returns each fingerprint with its stable identifiers and
`pipeline.store.devices` links the fingerprints of one device (a login whose BIOS serial could not
be collected has a fingerprint of its own), then applies the thresholds and the order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.profile import limits
from pipeline.store import devices
from pipeline.store.backend import Backend, QueryResult
from pipeline.store.errors import StoreError
from pipeline.store.quality import collection_quality
from pipeline.store.sqltext import literal


@dataclass(frozen=True, slots=True)
class Params:
    date_from: dt.date
    date_to: dt.date
    exchange: str | None = None
    min_accounts: int | None = None  # None: the query's default
    min_brokers: int = 1

    def __post_init__(self) -> None:
        if self.date_to < self.date_from:
            raise StoreError("--to is before --from")


@dataclass(frozen=True, slots=True)
class Context:
    """What a query's Python step may need besides the rows of its SQL."""

    backend: Backend
    params: Params
    min_accounts: int  # the query's default applied

    def devices(self) -> dict[str, str]:
        """Fingerprint → device (`pipeline.store.devices.link`) over the reports of the range and exchange."""
        sql = _render(_OBSERVATIONS, self.backend.database, self.params, self.min_accounts)
        return devices.link_rows(self.backend.query(sql))


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    title: str
    doc: str
    sql: str
    default_min: int = 2
    by_exchange: bool = True
    post: Callable[[QueryResult, Context], QueryResult] | None = field(default=None)


_RANGE = "trading_day >= {date_from} AND trading_day <= {date_to}"
_OBSERVATIONS = devices.OBSERVATIONS_SQL.replace("{where}", _RANGE + " {exchange_filter}")


def _shared_ips_devices(result: QueryResult, context: Context) -> QueryResult:
    """Replace each IP's fingerprints by the number of devices behind them."""
    i = result.columns.index("fingerprints")
    device = context.devices() if result.rows else {}
    columns = [*result.columns[:i], "devices", *result.columns[i + 1 :]]
    rows = [(*row[:i], len({device.get(fp, fp) for fp in row[i]}), *row[i + 1 :]) for row in result.rows]
    return QueryResult(columns, rows)


QUERIES: dict[str, NamedQuery] = {q.name: q for q in (
    NamedQuery(
        "shared-devices", "一机多户 devices shared by several investors, across brokers",
        "Devices used by at least --min-accounts investors (broker:investor), and by at least --min-brokers "
        "brokers. A device is named by its most complete fingerprint; `fingerprints` lists all of its "
        "fingerprints (logins whose BIOS or disk serial, IMEI … could not be collected have their own).",
        _OBSERVATIONS,
        post=lambda result, c: devices.shared_devices_rows(result, c.min_accounts, c.params.min_brokers),
    ),
    NamedQuery(
        "multi-device-investors", "一户多机 investors on many devices",
        "Investors who reported from at least --min-accounts distinct devices (fingerprints of one device "
        "linked, as in shared-devices); `fingerprints` lists the fingerprints behind them.",
        _OBSERVATIONS,
        post=lambda result, c: devices.multi_device_investors_rows(result, c.min_accounts),
    ),
    NamedQuery(
        "shared-ips", "public IPs shared by many investors",
        "Public IPs behind at least --min-accounts investors, and the devices behind them (linked as in "
        "shared-devices). Reports flagged W408 (a private or reserved address given as public IP) are left "
        "out: such an address says nothing about the office.",
        f"""
SELECT
    public_ip,
    uniqExact(investor) AS investors,
    uniqExact(broker_id) AS brokers,
    groupUniqArrayIf(device_fingerprint, device_fingerprint != '') AS fingerprints,
    arraySort(groupUniqArray(investor)) AS investor_list,
    count() AS reports
FROM
(
    SELECT public_ip, broker_id, concat(broker_id, ':', investor_id) AS investor, device_fingerprint
    FROM {{db}}.reports FINAL
    WHERE {_RANGE} AND NOT has(warnings, 'W408') {{exchange_filter}}
)
GROUP BY public_ip
HAVING investors >= {{min_accounts}}
ORDER BY investors DESC, public_ip
""",
        post=_shared_ips_devices,
    ),
    NamedQuery(
        "relay-concentration", "relay software concentration (RelayAppID share)",
        "Reports relayed by each RelayAppID and app type, with its share of relayed and of all reports.",
        f"""
SELECT
    relay_app_id,
    app_type,
    count() AS reports,
    round(reports / (SELECT count() FROM {{db}}.reports FINAL
                     WHERE {_RANGE} AND relay_app_id != '' {{exchange_filter}}), 4) AS share_of_relayed,
    round(reports / (SELECT count() FROM {{db}}.reports FINAL WHERE {_RANGE} {{exchange_filter}}), 4) AS share_of_all,
    uniqExact(concat(broker_id, ':', investor_id)) AS investors,
    uniqExact(broker_id) AS brokers,
    arraySort(groupUniqArray(app_id)) AS client_apps
FROM {{db}}.reports FINAL
WHERE {_RANGE} AND relay_app_id != '' {{exchange_filter}}
GROUP BY relay_app_id, app_type
ORDER BY reports DESC, relay_app_id, app_type
""",
    ),
    NamedQuery(
        "collection-quality", "collection quality by vendor and AppID",
        "Per vendor and AppID: reports, reports with items that could not be collected (collect_flags), "
        "which items failed how often (named from the terminal layouts), and W406 inconsistencies.",
        f"""
SELECT
    vendor_id,
    app_id,
    terminal_type,
    collect_flags,
    count() AS reports,
    countIf(has(warnings, 'W406')) AS inconsistent
FROM {{db}}.reports FINAL
WHERE {_RANGE} {{exchange_filter}}
GROUP BY vendor_id, app_id, terminal_type, collect_flags
ORDER BY vendor_id, app_id, terminal_type, collect_flags
""",
        post=lambda result, _: collection_quality(result),
    ),
    NamedQuery(
        "app-authorization", "unregistered (W402) or unauthorized (W403) AppIDs by broker",
        "Per broker, warning, AppID and RelayAppID: reports and investors, first and last trading day.",
        f"""
SELECT
    broker_id,
    code,
    app_id,
    relay_app_id,
    count() AS reports,
    uniqExact(investor_id) AS investors,
    min(trading_day) AS first_day,
    max(trading_day) AS last_day
FROM {{db}}.reports FINAL
ARRAY JOIN arrayFilter(w -> (w = 'W402' OR w = 'W403'), warnings) AS code
WHERE {_RANGE} {{exchange_filter}}
GROUP BY broker_id, code, app_id, relay_app_id
ORDER BY broker_id, code, reports DESC, app_id, relay_app_id
""",
    ),
    NamedQuery(
        "time-skew", "login/collection time skew (W407) and its distribution",
        "Per broker: |login_time − collect_time| in seconds: quantiles, maximum, buckets, and the reports "
        "over the configured threshold (W407).",
        f"""
SELECT
    broker_id,
    count() AS reports,
    countIf(has(warnings, 'W407')) AS w407,
    countIf(skew > {{skew_threshold}}) AS over_threshold,
    quantileExact(0.5)(skew) AS p50_s,
    quantileExact(0.9)(skew) AS p90_s,
    quantileExact(0.99)(skew) AS p99_s,
    max(skew) AS max_s,
    countIf(skew < 60) AS under_1m,
    countIf(skew >= 60 AND skew < 300) AS from_1m_to_5m,
    countIf(skew >= 300 AND skew < 900) AS from_5m_to_15m,
    countIf(skew >= 900) AS over_15m
FROM
(
    SELECT broker_id, warnings, abs(dateDiff('second', collect_time, login_time)) AS skew
    FROM {{db}}.reports FINAL
    WHERE {_RANGE} {{exchange_filter}}
)
GROUP BY broker_id
ORDER BY w407 DESC, broker_id
""",
    ),
    NamedQuery(
        "reject-rates", "reject rates by reporter and code",
        "Per reporter and error code: rejected reports, the reporter's rejects and reports in total "
        "(accepted + rejected), and the rate. Rejected input was never routed, so no --exchange.",
        """
SELECT
    reporter_id,
    error_code,
    rejects,
    reporter_rejects,
    reporter_reports,
    round(rejects / reporter_reports, 6) AS reject_rate
FROM
(
    SELECT reporter_id, error_code, uniqExact(position) AS rejects
    FROM
    (
        SELECT reporter_id, error_code,
               concat(source_topic, ':', toString(source_partition), ':', toString(source_offset)) AS position
        FROM {db}.dlq
        WHERE day >= {date_from} AND day <= {date_to}
    )
    GROUP BY reporter_id, error_code
) AS by_code
ANY LEFT JOIN
(
    SELECT reporter_id, sumIf(n, kind = 'rejected') AS reporter_rejects, sum(n) AS reporter_reports
    FROM
    (
        SELECT reporter_id, 'accepted' AS kind, uniqExact(report_id) AS n
        FROM {db}.reports
        WHERE trading_day >= {date_from} AND trading_day <= {date_to}
        GROUP BY reporter_id
        UNION ALL
        SELECT reporter_id, 'rejected' AS kind,
               uniqExact(concat(source_topic, ':', toString(source_partition), ':', toString(source_offset))) AS n
        FROM {db}.dlq
        WHERE day >= {date_from} AND day <= {date_to}
        GROUP BY reporter_id
    )
    GROUP BY reporter_id
) AS by_reporter USING reporter_id
ORDER BY reporter_id, error_code
""",
        by_exchange=False,
    ),
)}


def _render(sql: str, database: str, params: Params, min_accounts: int) -> str:
    exchange_filter = f"AND has(trading_exchanges, {literal(params.exchange)})" if params.exchange else ""
    return sql.format(
        db=database,
        date_from=literal(params.date_from),
        date_to=literal(params.date_to),
        exchange_filter=exchange_filter,
        min_accounts=literal(min_accounts),
        min_brokers=literal(params.min_brokers),
        skew_threshold=literal(limits().time_skew_seconds),
    )


def render_sql(query: NamedQuery, database: str, params: Params) -> str:
    """The query's SQL with every parameter inlined as a literal."""
    if params.exchange and not query.by_exchange:
        raise StoreError(f"{query.name} cannot be filtered by exchange")
    return _render(query.sql, database, params, _min_accounts(query, params))


def _min_accounts(query: NamedQuery, params: Params) -> int:
    return params.min_accounts if params.min_accounts is not None else query.default_min


def run(backend: Backend, name: str, params: Params) -> QueryResult:
    query = QUERIES.get(name)
    if query is None:
        raise StoreError(f"unknown query {name!r}; known: {', '.join(QUERIES)}")
    result = backend.query(render_sql(query, backend.database, params))
    if query.post is None:
        return result
    return query.post(result, Context(backend, params, _min_accounts(query, params)))
