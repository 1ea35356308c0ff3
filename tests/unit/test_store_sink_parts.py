"""The sink's small parts: batches and their insert identity, topic routing, back-off, the storer's
retries, retention arithmetic, the collection-quality naming, and the text outputs of queries."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pipeline import schemas
from pipeline.config import ClickHouseSettings, KafkaSettings, Settings, TopicNames
from pipeline.store.backend import Column, QueryResult
from pipeline.store.batch import Batch
from pipeline.store.capabilities import Capabilities
from pipeline.store.embedded import ChdbBackend
from pipeline.store.errors import StoreError, StoreUnavailable
from pipeline.store.migrations import migrate
from pipeline.store.output import render
from pipeline.store.policy import Retention
from pipeline.store.quality import collection_quality, item_names
from pipeline.store.retention import enforce, last_day, plan
from pipeline.store.sink import Router, Sink
from pipeline.store.storing import Backoff, SinkStats, Storer
from pipeline.store.tables import DELIVERY_COLUMNS, TABLES


def test_batch_identity_depends_only_on_the_offset_ranges() -> None:
    a = Batch(first={("t", 0): 5, ("u", 1): 0}, last={("t", 0): 9, ("u", 1): 3}, records=9)
    b = Batch(first={("u", 1): 0, ("t", 0): 5}, last={("u", 1): 3, ("t", 0): 9}, records=9)
    assert a.token("reports/raw") == b.token("reports/raw") != a.token("deliveries/raw")
    assert a.token("reports/raw") != Batch(first={("t", 0): 5}, last={("t", 0): 10}).token("reports/raw")
    assert a.next_offsets() == {("t", 0): 10, ("u", 1): 4}
    a.rows["dlq"] = [(1,), (2,)]
    a.raw["reports"] = [b"x"]
    assert a.counts() == {"dlq": 2, "reports": 1}


def test_router() -> None:
    topics = TopicNames(exchange_prefix="p.exchange.", reports="p.reports", dlq="p.dlq", ref_prefix="p.ref.")
    router = Router(topics)
    assert router.subscription() == ["p.reports", "p.dlq", r"^p\.exchange\..+", "p.ref.subscribers"]
    assert router.table("p.exchange.NEWEX") is not None and router.table("p.exchange.NEWEX").name == "deliveries"  # type: ignore[union-attr]
    assert router.table("p.reports").name == "reports"  # type: ignore[union-attr]
    assert router.table("p.ref.accounts") is None and router.table("other") is None


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(0.25, 10.0)
    delays = [backoff.delay(n) for n in range(12)]
    assert all(0.125 <= d <= 10.0 for d in delays)
    assert max(delays[:2]) <= 0.5 and min(delays[8:]) >= 5.0


def test_partition_last_days() -> None:
    assert last_day("20251120", "day") == dt.date(2025, 11, 20)
    assert last_day("202502", "month") == dt.date(2025, 2, 28)
    assert last_day("2024", "year") == dt.date(2024, 12, 31)


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb-retention"), "lt_unit_retention")
    try:
        yield backend
    finally:
        backend.close()


def test_retention_drops_whole_expired_partitions_only(chdb: ChdbBackend) -> None:
    long = Retention(7305, 400, 7305)
    migrate(chdb, long)
    today = dt.datetime.now(dt.UTC).date()  # TTL works on the real clock, so must the test
    days = [today - dt.timedelta(days=n) for n in (0, 30, 31, 45, 500)]
    rows = [(int(dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC).timestamp() * 1000), "SHFE", "0101", "0101",
             f"r{i}", "FUTURES_COMPANY", "C", d, "", "CTP", 1, "A", "", "WINDOWS", "D", "1.2.3.4", [], "lt", "u")
            for i, d in enumerate(days)]  # fmt: skip
    chdb.insert("deliveries", DELIVERY_COLUMNS, [list(c) for c in zip(*rows, strict=True)], None)
    # The configured period shrinks to the 30-day floor: partitions of days older than 30 days go.
    policy = Retention(7305, 30, 7305)
    planned = plan(chdb, policy, today)
    dropped = sorted(a.what for a in planned if a.table == "deliveries" and a.what.startswith("DROP"))
    assert dropped == [f"DROP PARTITION {d:%Y%m%d}" for d in sorted(days[2:])]
    assert any(a.table == "deliveries" and a.what.startswith("MODIFY TTL") for a in planned)
    enforce(chdb, policy, today)
    kept = sorted(d for (d,) in chdb.query("SELECT trading_day FROM lt_unit_retention.deliveries").rows)
    assert kept == sorted(days[:2])
    assert not [a for a in plan(chdb, policy, today) if a.table == "deliveries"], "enforced: nothing left to do"


def test_collection_quality_names_items_from_the_layouts() -> None:
    names = item_names()
    assert names[(1, 8)] == "bios_serial" and names[(1, 2)] == "private_ip" and names[(1, 3)] == "mac"
    assert names[(3, 8)] == "device_serial" and names[(4, 6)] == "imei" and names[(5, 7)] == "phone"
    rows = QueryResult(["vendor_id", "app_id", "terminal_type", "collect_flags", "reports", "inconsistent"], [
        ("CTP", "CT_Q7_V1.0.0", 1, 0, 10, 1),
        ("CTP", "CT_Q7_V1.0.0", 1, 1 << 8, 3, 0),
        ("CTP", "CT_Q7_V1.0.0", 2, (1 << 8) | (1 << 6), 2, 0),
    ])  # fmt: skip
    [(vendor, app, reports, incomplete, share, w406, items)] = collection_quality(rows).rows
    assert (vendor, app, reports, incomplete, w406) == ("CTP", "CT_Q7_V1.0.0", 15, 5, 1)
    assert share == round(5 / 15, 4) and items == {"bios_serial": 5, "disk_serial": 2}


def test_query_outputs() -> None:
    result = QueryResult(["ip", "investors", "investor_list", "items", "day", "share"],
                         [("1.2.3.4", 2, ["0101:1", "0202:2"], {"mac": 3}, dt.date(2025, 11, 20), 0.25),
                          ("投资者", 1, [], {}, dt.date(2025, 11, 21), 1.0)])  # fmt: skip
    table = render(result, "table").splitlines()
    assert table[0].split() == result.columns and table[-1] == "(2 rows)"
    assert "0101:1 0202:2" in table[2] and "mac=3" in table[2]
    rows = list(csv.reader(io.StringIO(render(result, "csv"))))
    assert rows[1] == ["1.2.3.4", "2", "0101:1 0202:2", "mac=3", "2025-11-20", "0.25"]
    data = json.loads(render(result, "json"))
    assert data[0]["investor_list"] == ["0101:1", "0202:2"] and data[1]["day"] == "2025-11-21"
    assert data[0]["items"] == {"mac": 3}


class FlakyBackend:
    """Fails the first `failures` inserts of `table` as unavailable; records the others."""

    database = "lt_fake"
    capabilities = Capabilities.from_version("18.16.1")

    def __init__(self, table: str, failures: int, error: type[StoreError] = StoreUnavailable) -> None:
        self.table, self.failures, self.error = table, failures, error
        self.inserts: list[tuple[str, int, str | None]] = []

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> QueryResult:
        return QueryResult([], [])

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        if table == self.table and self.failures:
            self.failures -= 1
            raise self.error("down")
        self.inserts.append((table, len(data[0]), token))
        return len(data[0])

    def close(self) -> None: ...


def two_part_batch() -> Batch:
    return Batch(rows={"dlq": [tuple(range(14))] * 3, "subscribers": [tuple(range(9))] * 2},
                 first={("t", 0): 0}, last={("t", 0): 4}, records=5)  # fmt: skip


def test_the_storer_retries_only_what_failed_with_the_same_token() -> None:
    backend = FlakyBackend("subscribers", failures=3)
    stats = SinkStats()
    batch = two_part_batch()
    assert Storer(backend, Backoff(0.001, 0.002), stats).store(batch, threading.Event(), retry=True)
    assert stats.retries == 3
    assert [(t, n) for t, n, _ in backend.inserts] == [("dlq", 3), ("subscribers", 2)], "dlq inserted once"
    assert backend.inserts[1][2] == batch.token("subscribers/rows")


def test_the_storer_gives_up_when_told() -> None:
    backend = FlakyBackend("dlq", failures=1_000_000)
    abandon = threading.Event()
    storer = Storer(backend, Backoff(0.01, 0.02), SinkStats())
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(storer.store(two_part_batch(), abandon, retry=True)))
    worker.start()
    abandon.set()
    worker.join(5)
    assert result == [False] and backend.inserts == []
    assert not Storer(backend, Backoff(0.01, 0.02), SinkStats()).store(two_part_batch(), threading.Event(), retry=False)


def test_the_storer_lets_faults_through() -> None:
    backend = FlakyBackend("dlq", failures=1, error=StoreError)
    with pytest.raises(StoreError):
        Storer(backend, Backoff(0.01, 0.02), SinkStats()).store(two_part_batch(), threading.Event(), retry=True)


class FakeMessage:
    """What the sink reads of a consumed record (or of an end-of-partition event)."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None = None, eof: bool = False) -> None:
        self._topic, self._partition, self._offset, self._value, self._eof = topic, partition, offset, value, eof

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return b"S1"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_763_600_400_000)

    def error(self) -> Any:
        from confluent_kafka import KafkaError

        return KafkaError(KafkaError._PARTITION_EOF) if self._eof else None


@pytest.fixture()
def sink() -> Iterator[Sink]:
    topics = TopicNames(exchange_prefix="p.exchange.", reports="p.reports", dlq="p.dlq", ref_prefix="p.ref.")
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1"), topics=topics,
                        clickhouse=ClickHouseSettings(host="fake", batch_rows=3, flush_interval_ms=60_000))  # fmt: skip
    sink = Sink(settings, FlakyBackend("none", 0), group="unit", decode_in_clickhouse=False)
    try:
        yield sink
    finally:
        sink.consumer.close()
        sink.executor.shutdown()


def current(record: str) -> bytes:
    """A value carrying `record`'s current header (the body is not read here)."""
    return schemas.MAGIC + schemas.fingerprint(record) + b"body"


def test_the_sink_batches_per_table_over_its_own_partitions(sink: Sink) -> None:
    report, delivery = current(TABLES["reports"].record), current(TABLES["deliveries"].record)
    sink.raw_headers = {"reports": report[: schemas.HEADER_LEN]}  # as for a batch decoder of reports only
    sink._add_all([  # type: ignore[arg-type]
        FakeMessage("p.reports", 0, 5, report), FakeMessage("p.exchange.SHFE", 1, 40, delivery),
        FakeMessage("p.reports", 0, 6, report), FakeMessage("p.dlq", 2, 0, b"not avro"),
        FakeMessage("p.exchange.DCE", 0, 7, delivery), FakeMessage("p.reports", 1, 0, report),
        FakeMessage("p.ref.subscribers", 0, 3, None), FakeMessage("p.reports", 0, 7, eof=True),
    ])  # fmt: skip
    batches = sink.batches
    assert set(batches) == {"reports", "deliveries", "dlq", "subscribers"}
    assert batches["reports"].first == {("p.reports", 0): 5, ("p.reports", 1): 0}
    assert batches["reports"].last == {("p.reports", 0): 6, ("p.reports", 1): 0}
    assert batches["reports"].records == 3 and batches["reports"].raw == {"reports": [report] * 3}
    assert batches["deliveries"].next_offsets() == {("p.exchange.SHFE", 1): 41, ("p.exchange.DCE", 0): 8}
    assert batches["deliveries"].pending == {"deliveries": [delivery] * 2}
    assert batches["dlq"].pending == {"dlq": [b"not avro"]}
    assert [row[1] for row in batches["subscribers"].rows["subscribers"]] == ["S1"]  # a tombstone
    assert sink.at_end == {("p.reports", 0)}
    # batch_rows is 3: only the reports batch is full; all are due once caught up.
    assert sink._due() == ["reports"]
    assert sorted(sink._due(everything=True)) == ["deliveries", "dlq", "reports", "subscribers"]


def test_a_table_batch_is_stored_and_committed_alone(sink: Sink) -> None:
    sink._add_all([FakeMessage("p.dlq", 0, n, b"not avro") for n in range(2)]  # type: ignore[arg-type]
                  + [FakeMessage("p.exchange.SHFE", 0, 9, b"not avro")])  # fmt: skip
    committed: list[dict[tuple[str, int], int]] = []
    sink._commit = lambda batch: committed.append(batch.next_offsets())  # type: ignore[method-assign]
    sink._launch("dlq")
    while sink.flights:
        sink._await_flight()
    assert committed == [{("p.dlq", 0): 2}] and set(sink.batches) == {"deliveries"}
    assert sink.stats.skipped == 2  # not Avro: skipped, but its offsets are committed
