"""Record → row, both ways: the Python mapping and the SQL mapping (read by ClickHouse's Avro
format in chdb) give the same rows for the same pipeline outputs; and a batch ClickHouse cannot
read falls back to Python, record by record, skipping only the bad record.

The records are real outputs of `Processor` over generated reports (with missing items, IPv6,
corrections and every defect class), so every field shape the pipeline emits is covered.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pipeline import schemas
from pipeline.generate import PlanConfig, plan_reports
from pipeline.store.avrosql import AvroReader, container
from pipeline.store.backend import Column, QueryResult
from pipeline.store.batch import Batch
from pipeline.store.capabilities import Capabilities
from pipeline.store.embedded import ChdbBackend
from pipeline.store.migrations import migrate
from pipeline.store.policy import Retention
from pipeline.store.storing import Backoff, SinkStats, Storer
from pipeline.store.tables import TABLES, china_date, reporter_type, trading_day

from .conftest import NOW_MS, Kit

Outputs = dict[str, list[bytes]]


@pytest.fixture(scope="module")
def outputs(kit: Kit) -> Outputs:
    processor = kit.processor()
    config = PlanConfig(reports=500, defect_rate=0.01, missing_item_rate=0.3, ipv6_rate=0.2, correction_rate=0.1,
                        seed=5)  # fmt: skip
    out: Outputs = {"reports": [], "deliveries": [], "dlq": []}
    for i, planned in enumerate(plan_reports(kit.market, kit.keys, config)):
        for o in processor.process(planned.topic, i % 4, i, planned.key, planned.value, NOW_MS).outputs:
            if o.topic == "lt.reports":
                out["reports"].append(o.value)
            elif o.topic == "lt.dlq":
                out["dlq"].append(o.value)
            elif o.topic.startswith("lt.exchange."):
                out["deliveries"].append(o.value)
    assert all(len(v) > 20 for v in out.values())
    return out


@pytest.fixture(scope="module")
def chdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb-tables"), "lt_unit_tables")
    migrate(backend, Retention(7305, 3650, 7305))  # the records are from 2025: keep their deliveries
    try:
        yield backend
    finally:
        backend.close()


def python_rows(name: str, values: list[bytes]) -> list[tuple[Any, ...]]:
    table = TABLES[name]
    return [table.row(schemas.decode(v, expected=table.record)[1]) for v in values]


@pytest.mark.parametrize("name", ["reports", "deliveries"])
def test_sql_mapping_equals_python_mapping(outputs: Outputs, chdb_store: ChdbBackend, name: str) -> None:
    reader = AvroReader()  # shares the module's chdb session
    try:
        columns = reader.columns(TABLES[name], outputs[name])
    finally:
        reader.close()
    assert [tuple(row) for row in zip(*columns, strict=True)] == python_rows(name, outputs[name])


@pytest.mark.parametrize("name", ["reports", "deliveries"])
def test_insert_inside_chdb_equals_python_insert(outputs: Outputs, chdb_store: ChdbBackend, name: str) -> None:
    table = TABLES[name]
    key = "report_id" if name == "reports" else "exchange, report_id"
    db = chdb_store.database
    chdb_store.execute(f"TRUNCATE TABLE {db}.{name}")
    chdb_store.insert_avro(table, outputs[name], None)
    via_sql = chdb_store.query(f"SELECT * FROM {db}.{name} ORDER BY {key}").rows
    chdb_store.execute(f"TRUNCATE TABLE {db}.{name}")
    rows = python_rows(name, outputs[name])
    chdb_store.insert(name, table.columns, [list(c) for c in zip(*rows, strict=True)], None)
    via_python = chdb_store.query(f"SELECT * FROM {db}.{name} ORDER BY {key}").rows
    assert via_sql == via_python and len(via_sql) == len(outputs[name])


def test_container_holds_the_bodies(outputs: Outputs) -> None:
    import io

    from fastavro import reader

    values = outputs["deliveries"][:5]
    records = list(reader(io.BytesIO(container("lookthrough.ExchangeRecord", values))))
    assert records == [schemas.decode(v)[1] for v in values]


class ColumnsBackend:
    """A server-like backend (no insert_avro) that records its inserts."""

    database = "lt_fake"
    capabilities = Capabilities.from_version("18.16.1")

    def __init__(self) -> None:
        self.inserted: dict[str, list[tuple[Any, ...]]] = {}

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> QueryResult:
        return QueryResult([], [])

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        self.inserted.setdefault(table, []).extend(zip(*data, strict=True))
        return len(data[0])

    def close(self) -> None: ...


@pytest.mark.parametrize("backend_kind", ["server", "chdb"])
def test_a_batch_clickhouse_cannot_read_is_decoded_in_python(outputs: Outputs, chdb_store: ChdbBackend,
                                                             backend_kind: str) -> None:  # fmt: skip
    values = list(outputs["reports"][:50])
    bad = values[7][: schemas.HEADER_LEN] + b"\xff" * 40  # the current schema's header, a corrupt body
    values.insert(7, bad)
    backend: Any = ColumnsBackend() if backend_kind == "server" else chdb_store
    if backend_kind == "chdb":
        chdb_store.execute(f"TRUNCATE TABLE {chdb_store.database}.reports")
    stats = SinkStats()
    storer = Storer(backend, Backoff(0.1, 0.1), stats)
    try:
        batch = Batch(raw={"reports": values}, first={("t", 0): 0}, last={("t", 0): len(values) - 1},
                      records=len(values))  # fmt: skip
        assert storer.store(batch, threading.Event(), retry=False)
    finally:
        storer.close()
    assert stats.skipped == 1
    if backend_kind == "server":
        stored = [r[4] for r in backend.inserted["reports"]]
    else:
        stored = [r for (r,) in chdb_store.query(f"SELECT report_id FROM {chdb_store.database}.reports").rows]
    assert sorted(stored) == sorted(schemas.decode(v)[1]["report_id"] for v in outputs["reports"][:50])


def test_small_helpers() -> None:
    assert trading_day("20251120") == dt.date(2025, 11, 20)
    # 2025-11-20 16:30 UTC is 00:30 on the 21st in China.
    assert china_date(int(dt.datetime(2025, 11, 20, 16, 30, tzinfo=dt.UTC).timestamp() * 1000)) == dt.date(2025, 11, 21)
    assert reporter_type("SHFE") == "EXCHANGE" and reporter_type("0101") == "FUTURES_COMPANY"
