"""The store's insert columns and the mapping of each Kafka record to one row, twice.

`TABLES` names, per table, the Avro record its topic carries, its columns, and the mapping from
record to row written two ways that must agree (a unit test holds them to it on real records):

* `row`, in Python over the decoded record: for every table, and for any record written with an
  older schema version;
* `sql`, one ClickHouse expression per column over the record as ClickHouse's Avro reader sees it
  (`pipeline.store.avrosql`): for the two high-volume tables, so their records are decoded in C++.

Conventions of both: nullable strings become '', timestamps stay epoch milliseconds, trading days
become dates. Rows are plain tuples, so a batch is transposed into columns once (`zip(*rows)`), in
C. The columns must match the DDL in `migrations/` (a unit test checks that too).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline import schemas
from pipeline.errors import EnvelopeError
from pipeline.profile import limits
from pipeline.store.backend import Column, Kind

_CST_MS = 8 * 3_600_000
_DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)

Row = tuple[Any, ...]


@lru_cache(maxsize=4096)
def trading_day(text: str) -> dt.date:
    """'YYYYMMDD' → date (a handful of distinct days per batch, hence the cache)."""
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


@lru_cache(maxsize=4096)
def _day_number(days: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=days)


def china_date(ms: int) -> dt.date:
    """The China Standard Time calendar date of an epoch-milliseconds instant."""
    return _day_number((ms + _CST_MS) // _DAY_MS)


def china_today(now_ms: int | None = None) -> dt.date:
    """Today's China date (that of `now_ms` if given): the last day the store dates a row with, a
    day ahead of the UTC date from 16:00 UTC on."""
    return china_date(int(time.time() * 1000) if now_ms is None else now_ms)


def _columns(spec: str) -> tuple[Column, ...]:
    """'name:Kind' pairs, whitespace separated, to Columns."""
    out = []
    for item in spec.split():
        name, _, kind = item.partition(":")
        out.append(Column(name, Kind[kind]))
    return tuple(out)


REPORT_COLUMNS = _columns("""
    trading_day:DATE broker_id:STRING investor_id:STRING reporter_id:STRING report_id:STRING
    reporter_type:STRING user_id:STRING received_at:TIMESTAMP correction_of:STRING vendor_id:STRING
    key_version:UINT32 suite:STRING app_type:UINT8 public_ip:STRING public_port:UINT16
    login_time:TIMESTAMP app_id:STRING relay_app_id:STRING terminal_type:UINT8 terminal_kind:STRING
    collect_time:TIMESTAMP collect_flags:UINT32 private_ips:STRINGS macs:STRINGS device_name:STRING
    device_model:STRING os_version:STRING disk_serial:STRING cpu_serial:STRING bios_serial:STRING
    device_serial:STRING system_disk_partition:STRING imei:STRING device_id:STRING idfv:STRING
    phone:STRING platform:STRING latitude:FLOAT64_OR_NULL longitude:FLOAT64_OR_NULL flags:STRINGS
    warnings:STRINGS device_fingerprint:STRING trading_exchanges:STRINGS trading_codes:STRINGS
    source_topic:STRING source_partition:UINT32 source_offset:UINT64 processing_system:STRING
    pipeline_instance:STRING pipeline_version:STRING schema_fingerprint:STRING processed_at:TIMESTAMP
""")


def report_row(r: dict[str, Any]) -> Row:
    codes = sorted(r["trading_codes"].items())
    source, prov = r["source"], r["provenance"]
    return (
        trading_day(r["trading_day"]), r["broker_id"], r["investor_id"], r["reporter_id"], r["report_id"],
        r["reporter_type"], r["user_id"], r["received_at"], r["correction_of"] or "", r["vendor_id"],
        r["key_version"], r["suite"], r["app_type"], r["public_ip"], r["public_port"],
        r["login_time"], r["app_id"], r["relay_app_id"] or "", r["terminal_type"], r["terminal_kind"],
        r["collect_time"], r["collect_flags"], r["private_ips"], r["macs"], r["device_name"] or "",
        r["device_model"] or "", r["os_version"] or "", r["disk_serial"] or "", r["cpu_serial"] or "",
        r["bios_serial"] or "", r["device_serial"] or "", r["system_disk_partition"] or "", r["imei"] or "",
        r["device_id"] or "", r["idfv"] or "", r["phone"] or "", r["platform"] or "", r["latitude"],
        r["longitude"], r["flags"], r["warnings"], r["device_fingerprint"] or "",
        [ex for ex, _ in codes], [code for _, code in codes],
        source["topic"], source["partition"], source["offset"], prov["processing_system"],
        prov["pipeline_instance"], prov["pipeline_version"], prov["schema_fingerprint"], prov["processed_at"],
    )  # fmt: skip


DELIVERY_COLUMNS = _columns("""
    delivered_at:TIMESTAMP exchange:STRING member_id:STRING reporter_id:STRING report_id:STRING
    reporter_type:STRING trading_code:STRING trading_day:DATE correction_of:STRING vendor_id:STRING
    app_type:UINT8 app_id:STRING relay_app_id:STRING terminal_kind:STRING device_fingerprint:STRING
    public_ip:STRING warnings:STRINGS processing_system:STRING pipeline_instance:STRING
""")


def reporter_type(reporter_id: str) -> str:
    """Profile §1: a reporter is an exchange (reporting for members) iff its ID is an exchange's."""
    return "EXCHANGE" if reporter_id in limits().exchanges else "FUTURES_COMPANY"


_NULLABLE = frozenset({
    "correction_of", "relay_app_id", "device_name", "device_model", "os_version", "disk_serial", "cpu_serial",
    "bios_serial", "device_serial", "system_disk_partition", "imei", "device_id", "idfv", "phone", "platform",
    "device_fingerprint",
})  # fmt: skip
_DAY = "toDate(parseDateTime({0}, '%Y%m%d', 'UTC'))"
_CODES = "arraySort(mapKeys(trading_codes))"


def _sql(columns: tuple[Column, ...], special: dict[str, str]) -> tuple[str, ...]:
    """One expression per column: `special` ones as given, nullable strings as ifNull(x, ''), else the field."""
    return tuple(special.get(c.name, f"ifNull({c.name}, '')" if c.name in _NULLABLE else c.name) for c in columns)


REPORT_SQL = _sql(REPORT_COLUMNS, {
    "trading_day": _DAY.format("trading_day"),
    "reporter_type": "toString(reporter_type)",
    "trading_exchanges": _CODES,
    "trading_codes": f"arrayMap(k -> trading_codes[k], {_CODES})",
    "source_topic": "source.topic",
    "source_partition": "source.partition",
    "source_offset": "source.offset",
    **{name: f"provenance.{name}" for name in
       ("processing_system", "pipeline_instance", "pipeline_version", "schema_fingerprint", "processed_at")},
})  # fmt: skip


def delivery_row(r: dict[str, Any]) -> Row:
    prov = r["provenance"]
    return (
        prov["processed_at"], r["exchange"], r["member_id"], r["reporter_id"], r["report_id"],
        reporter_type(r["reporter_id"]), r["trading_code"], trading_day(r["trading_day"]),
        r["correction_of"] or "", r["vendor_id"], r["app_type"], r["app_id"], r["relay_app_id"] or "",
        r["terminal_kind"], r["device_fingerprint"] or "", r["public_ip"], r["warnings"],
        prov["processing_system"], prov["pipeline_instance"],
    )  # fmt: skip


def _delivery_sql() -> tuple[str, ...]:
    exchanges = ", ".join(f"'{ex}'" for ex in limits().exchanges)  # exchange IDs are [A-Z0-9]
    return _sql(DELIVERY_COLUMNS, {
        "delivered_at": "provenance.processed_at",
        "reporter_type": f"if(reporter_id IN ({exchanges}), 'EXCHANGE', 'FUTURES_COMPANY')",
        "trading_day": _DAY.format("trading_day"),
        "processing_system": "provenance.processing_system",
        "pipeline_instance": "provenance.pipeline_instance",
    })  # fmt: skip


DLQ_COLUMNS = _columns("""
    day:DATE reporter_id:STRING broker_id:STRING source_topic:STRING source_partition:UINT32
    source_offset:UINT64 report_id:STRING stage:STRING error_code:STRING error_message:STRING
    failed_at:TIMESTAMP processing_system:STRING original_key:BYTES original_value:BYTES
""")


def _envelope(value: bytes) -> dict[str, Any] | None:
    """The rejected input's envelope when it is one (the envelope is plaintext; only the terminal
    information inside its report line is encrypted)."""
    try:
        return schemas.decode(value, expected="lookthrough.ReportEnvelope")[1]
    except EnvelopeError:
        return None


def dlq_row(r: dict[str, Any]) -> Row:
    reporter = r["reporter_id"] or ""
    envelope = _envelope(r["original_value"])
    day = china_date(r["failed_at"])
    broker = reporter
    if envelope is not None:
        broker = envelope.get("broker_id") or reporter
        text = envelope.get("trading_day") or ""
        if len(text) == 8 and text.isdigit():
            with contextlib.suppress(ValueError):  # a reject may well carry an impossible date
                day = trading_day(text)
    return (
        day, reporter, broker, r["topic"], r["partition"], r["offset"], r["report_id"] or "", r["stage"],
        r["error_code"], r["error_message"], r["failed_at"], r["processing_system"], r["original_key"] or b"",
        r["original_value"],
    )  # fmt: skip


SUBSCRIBER_COLUMNS = _columns("""
    updated_at:TIMESTAMP subscriber_id:STRING exchange:STRING licence_no:STRING licensed:UINT8 tier:STRING
    valid_from:TIMESTAMP valid_to:TIMESTAMP_OR_NULL deleted:UINT8
""")


def subscriber_row(r: dict[str, Any]) -> Row:
    return (r["updated_at"], r["subscriber_id"], r["exchange"], r["licence_no"], int(r["licensed"]), r["tier"],
            r["valid_from"], r["valid_to"], 0)  # fmt: skip


def subscriber_tombstone(key: bytes | None, timestamp_ms: int) -> Row:
    """A deleted subscriber: the key names it, the Kafka timestamp dates it."""
    return (timestamp_ms, (key or b"").decode("utf-8", "replace"), "", "", 0, "", timestamp_ms, None, 1)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    record: str  # the Avro record its topic carries
    columns: tuple[Column, ...]
    row: Callable[[dict[str, Any]], Row]
    sql: tuple[str, ...] | None = None  # the same mapping in ClickHouse SQL, where worth it


TABLES = {
    "reports": Table("reports", "lookthrough.TerminalRecord", REPORT_COLUMNS, report_row, REPORT_SQL),
    "deliveries": Table("deliveries", "lookthrough.ExchangeRecord", DELIVERY_COLUMNS, delivery_row, _delivery_sql()),
    "dlq": Table("dlq", "lookthrough.DeadLetter", DLQ_COLUMNS, dlq_row),
    "subscribers": Table("subscribers", "lookthrough.Subscriber", SUBSCRIBER_COLUMNS, subscriber_row),
}
