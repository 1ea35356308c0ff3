"""`lookthrough bench store`: the sink's rows/s into the ClickHouse server beside its floor.

Setup (not timed): a generated market's reports run through `Processor` in this process; their
outputs for lt.reports, lt.exchange.* and lt.dlq are produced to topics under a fresh prefix.
Then, `repeat` times, in the same run against the same server:
- floor: the same rows, decoded and laid out as columns beforehand, inserted with
  clickhouse-driver's columnar `execute` in batches of the sink's size (into a fresh database);
- sink: `sinks` sink processes (as `lookthrough store sink` runs, one interpreter each; Native
  blocks made by chdb where the server takes them, else Python columns) reading
  those topics from the beginning as one fresh consumer group, into another fresh database, from
  the first record any of them read to the last batch any of them stored; the stored rows (FINAL)
  are checked against what was produced. Several processes share the partitions, as the sink
  scales out like the workers.
Medians are reported, with the ratio sink/floor and the largest sink process's peak RSS.
Databases and topics are dropped afterwards.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import localrun, schemas
from pipeline.config import Settings
from pipeline.store.avrosql import AvroReader
from pipeline.store.backend import Backend, Kind, connect
from pipeline.store.errors import StoreError
from pipeline.store.migrations import migrate
from pipeline.store.policy import Retention
from pipeline.store.sink import Sink
from pipeline.store.storing import transpose
from pipeline.store.tables import TABLES


@dataclass
class StoreFigures:
    rows: int
    batch_rows: int
    floor_per_s: list[float]
    sink_per_s: list[float]
    python_sink_per_s: list[float]
    sinks: int
    peak_rss_mb: float
    server: str
    path: str  # how the sink's raw batches reach the server: Native blocks or Python columns

    @property
    def ratio(self) -> float:
        return statistics.median(self.sink_per_s) / statistics.median(self.floor_per_s)


def processed_outputs(reports: int) -> list[tuple[str, bytes | None, bytes]]:
    """(topic without prefix, key, value) of every lt.reports, lt.exchange.*, lt.dlq output."""
    from pipeline.config import PipelineSettings
    from pipeline.crypto.keyring import Keyring
    from pipeline.generate import PlanConfig, plan_reports
    from pipeline.market import MarketConfig, build_market
    from pipeline.marketkeys import create_market_keyring
    from pipeline.process import Processor
    from pipeline.refdata import ReferenceData

    with tempfile.TemporaryDirectory(prefix="lt-bench-store-") as tmp:
        path, keys = create_market_keyring(Path(tmp) / "keys", ("sm4",))
        keyring = Keyring.load(path, "production")
    market = build_market(MarketConfig())
    settings = Settings(pipeline=PipelineSettings(fingerprint_key=b"bench-fingerprint-key"))
    processor = Processor(settings, keyring, ReferenceData.from_mapping(market.reference_data()))
    now = int(time.time() * 1000)  # fresh deliveries: older ones would expire under a 30-day TTL
    out = []
    for i, planned in enumerate(plan_reports(market, keys, PlanConfig(reports=reports))):
        for o in processor.process(planned.topic, 0, i, planned.key, planned.value, now).outputs:
            if not o.topic.startswith("lt.feedback."):
                out.append((o.topic.removeprefix("lt."), o.key, o.value))
    return out


def _floor_columns(outputs: list[tuple[str, bytes | None, bytes]], backend: Backend) -> dict[str, list[list[Any]]]:
    """Every table's rows as the columns the sink hands clickhouse-driver, made the same way (raw
    values decoded by chdb where the sink does so, the others in Python), with timestamps already
    in the server's unit: the floor times nothing but the client's insert of the same values."""
    values: dict[str, list[bytes]] = {}
    for topic, _, value in outputs:
        values.setdefault(_table_of(topic), []).append(value)
    columns = {}
    legacy = not backend.capabilities.datetime64
    reader = AvroReader()
    try:
        for name, table_values in values.items():
            table = TABLES[name]
            if table.sql is not None:
                cols = reader.columns(table, table_values)
            else:
                cols = transpose([table.row(schemas.decode(v, expected=table.record)[1]) for v in table_values])
            for i, column in enumerate(table.columns):
                if legacy and column.kind is Kind.TIMESTAMP:
                    cols[i] = [v // 1000 for v in cols[i]]
            columns[name] = cols
    finally:
        reader.close()
    return columns


def _table_of(topic: str) -> str:
    """The table a bench output's topic (without prefix) feeds."""
    return "reports" if topic == "reports" else "dlq" if topic == "dlq" else "deliveries"


@contextmanager
def _database(settings: Settings, name: str) -> Iterator[Backend]:
    ch = dataclasses.replace(settings.clickhouse, database=name)
    backend = connect(ch)
    try:
        backend.execute(f"DROP DATABASE IF EXISTS {name}")
        migrate(backend, Retention.from_settings(ch))
        yield backend
    finally:
        backend.execute(f"DROP DATABASE IF EXISTS {name}")
        backend.close()


def _floor(settings: Settings, columns: dict[str, list[list[Any]]], batch_rows: int, database: str) -> float:
    from clickhouse_driver import Client

    from pipeline.store.server import _password

    ch = settings.clickhouse
    client = Client(host=ch.host, port=ch.port, user=ch.user, password=_password(ch))
    total = sum(len(cols[0]) for cols in columns.values())
    with _database(settings, database):
        client.execute("SELECT 1")  # connected beforehand, as the sink's backend is
        started = time.perf_counter()
        for name, cols in columns.items():
            names = ", ".join(c.name for c in TABLES[name].columns)
            sql = f"INSERT INTO {database}.{name} ({names}) VALUES"
            for start in range(0, len(cols[0]), batch_rows):
                client.execute(sql, [c[start : start + batch_rows] for c in cols], columnar=True)
        elapsed = time.perf_counter() - started
    client.disconnect()
    return total / elapsed


def _stored(backend: Backend, expected: dict[str, int]) -> dict[str, int]:
    """Rows per table as analysts see them (FINAL: replays collapsed)."""
    return {name: int(backend.query(f"SELECT count() FROM {backend.database}.{name} FINAL").scalar())
            for name in expected}  # fmt: skip


def _sink_child(database: str, group: str, queue: Any, go: Any, decode_in_clickhouse: bool) -> None:
    """One sink process (spawned: settings come from the environment)."""
    settings = Settings.from_env()
    settings = dataclasses.replace(settings, clickhouse=dataclasses.replace(settings.clickhouse, database=database))
    backend = connect(settings.clickhouse)
    try:
        sink = Sink(settings, backend, group=group, decode_in_clickhouse=decode_in_clickhouse)
        queue.put("ready")
        go.wait(120)  # all members join together: no rebalance halfway through the run
        stats = sink.run(until_caught_up=True, timeout_s=600)
        queue.put((stats.rows, stats.first_record_at, stats.last_flush_at, _peak_rss_mb()))
    finally:
        backend.close()


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: a spawned process's ru_maxrss starts from
    its parent's size when it was forked (it survives the exec), VmHWM from its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sinks(settings: Settings, expected: dict[str, int], database: str, processes: int,
           decode_in_clickhouse: bool = True) -> tuple[float, float]:  # fmt: skip
    """Rows/s of `processes` sink processes in one group, each in its own interpreter as in
    production, timed from the first record any read to the last batch any stored
    (CLOCK_MONOTONIC is system-wide on Linux), and the largest one's peak RSS in MB; the stored
    rows are checked."""
    with _database(settings, database) as backend:
        os.environ["LT_CLICKHOUSE_BATCH_ROWS"] = str(settings.clickhouse.batch_rows)
        context = multiprocessing.get_context("spawn")  # no fork: chdb and librdkafka hold threads
        queue, go = context.Queue(), context.Event()
        group = f"{settings.kafka.group}.{database}"
        children = [context.Process(target=_sink_child, args=(database, group, queue, go, decode_in_clickhouse))
                    for _ in range(processes)]  # fmt: skip
        for child in children:
            child.start()
        assert [queue.get(timeout=120) for _ in children] == ["ready"] * processes
        go.set()
        results = [queue.get(timeout=900) for _ in children]
        for child in children:
            child.join(60)
        stored = _stored(backend, expected)
        if stored != expected:
            raise StoreError(f"sinks stored {stored}, expected {expected}")
        first = min(r[1] for r in results if r[1])
        last = max(r[2] for r in results)
        return float(sum(expected.values()) / (last - first)), max(float(r[3]) for r in results)


def run(reports: int, repeat: int, batch_rows: int, python_decode: bool, sinks: int = 1) -> StoreFigures:
    base = Settings.from_env()
    if not base.clickhouse.host:
        raise StoreError("bench store measures the server: set LT_CLICKHOUSE_HOST (and _PORT)")
    prefix = f"bench-store-{uuid.uuid4().hex[:6]}."
    os.environ.update(localrun.isolated_env(prefix, base.kafka.bootstrap))
    settings = Settings.from_env()
    settings = dataclasses.replace(settings, clickhouse=dataclasses.replace(settings.clickhouse, batch_rows=batch_rows))
    outputs = processed_outputs(reports)
    expected: dict[str, int] = {}
    for topic, _, _ in outputs:
        name = _table_of(topic)
        expected[name] = expected.get(name, 0) + 1
    _produce(settings, prefix, outputs)
    try:
        probe = connect(settings.clickhouse)
        server = f"ClickHouse {probe.capabilities.version} at {settings.clickhouse.host}:{settings.clickhouse.port}"
        path = "native" if getattr(probe, "native_blocks", False) else "columns"
        columns = _floor_columns(outputs, probe)
        probe.close()
        del outputs
        tag = uuid.uuid4().hex[:6]
        floors, rates, python_sinks, peaks = [], [], [], []
        for i in range(repeat):
            floors.append(_floor(settings, columns, batch_rows, f"lt_bench_floor_{tag}_{i}"))
            rate, peak_mb = _sinks(settings, expected, f"lt_bench_sink_{tag}_{i}", sinks)
            rates.append(rate)
            peaks.append(peak_mb)
            if python_decode:
                python_sinks.append(_sinks(settings, expected, f"lt_bench_py_{tag}_{i}", 1, False)[0])
        peak = max(peaks)
    finally:
        _delete_topics(settings, prefix)
    return StoreFigures(sum(expected.values()), batch_rows, floors, rates, python_sinks, sinks, peak, server, path)


def _produce(settings: Settings, prefix: str, outputs: list[tuple[str, bytes | None, bytes]]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from pipeline.topics import ensure_topics, output_topics

    ensure_topics(AdminClient(settings.kafka.client_config()), settings, output_topics(settings))
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 20, "compression.type": "lz4",
                         "enable.idempotence": True})  # fmt: skip
    for topic, key, value in outputs:
        while True:
            try:
                producer.produce(prefix + topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60):
        raise StoreError("bench records were not all delivered to Kafka")


def _delete_topics(settings: Settings, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    from pipeline.readback import topics_matching

    names = topics_matching(settings.kafka.client_config(), prefix)
    admin = AdminClient(settings.kafka.client_config())  # must outlive its futures
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=60)


def report(f: StoreFigures) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):>10,.0f}"

    lines = [
        f"{f.server}; {f.rows} rows per run (reports, deliveries, dead letters), batches of {f.batch_rows}, "
        f"{len(f.floor_per_s)} runs, medians",
        f"  floor: clickhouse-driver columnar insert of prepared columns  {med(f.floor_per_s)} rows/s",
        f"  sink ×{f.sinks}: Kafka → chdb → clickhouse-driver, {f.path:7}        {med(f.sink_per_s)} rows/s"
        f"   {f.ratio:6.1%} of the floor",
    ]
    if f.python_sink_per_s:
        ratio = statistics.median(f.python_sink_per_s) / statistics.median(f.floor_per_s)
        lines.append(f"  sink, decoding in Python (fastavro path)                   {med(f.python_sink_per_s)} rows/s"
                     f"   {ratio:6.1%} of the floor")  # fmt: skip
    lines.append(f"  runs: floor {[round(x) for x in f.floor_per_s]}, sink {[round(x) for x in f.sink_per_s]}")
    paired = [sink / floor for sink, floor in zip(f.sink_per_s, f.floor_per_s, strict=True)]
    lines.append(f"  sink/floor run by run (each sink run follows its floor run): "
                 f"{', '.join(f'{r:.0%}' for r in paired)}; median {statistics.median(paired):.1%}")  # fmt: skip
    lines.append(f"  peak RSS of a sink process: {f.peak_rss_mb:.0f} MB (batches of {f.batch_rows} records)")
    return "\n".join(lines)
