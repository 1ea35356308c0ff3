"""Native blocks on the real ClickHouse server: a batch the sink sends as a block made by chdb is
stored exactly as the same records inserted as Python-mapped columns through clickhouse-driver;
and a table altered after its types were learned gets the batch as columns, then a new block.

The records are real pipeline outputs (`Processor` over a generated market); the reference rows
come from the Python mapping (`Table.row` over fastavro's decoding), not from the block path.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pipeline import schemas
from pipeline.store.backend import Backend
from pipeline.store.batch import Batch
from pipeline.store.bench import processed_outputs
from pipeline.store.server import ServerBackend
from pipeline.store.storing import Backoff, SinkStats, Storer, transpose
from pipeline.store.tables import TABLES

KEYS = {"reports": "report_id", "deliveries": "exchange, report_id"}


@pytest.fixture(scope="module")
def values() -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {"reports": [], "deliveries": []}
    for topic, _, value in processed_outputs(400):
        name = "reports" if topic == "reports" else "deliveries" if topic.startswith("exchange.") else None
        if name:
            out[name].append(value)
    assert all(len(v) > 100 for v in out.values())
    return out


def _stored(backend: Backend, name: str) -> list[tuple[Any, ...]]:
    return backend.query(f"SELECT * FROM {backend.database}.{name} ORDER BY {KEYS[name]}").rows


def _store(storer: Storer, name: str, values: list[bytes], first: int) -> Batch:
    batch = Batch(raw={name: values}, first={("t", 0): first}, last={("t", 0): first + len(values) - 1},
                  records=len(values))  # fmt: skip
    assert storer.store(batch, threading.Event(), retry=False)
    return batch


@pytest.mark.parametrize("name", ["reports", "deliveries"])
def test_a_native_block_stores_what_python_columns_store(server_store: Backend, values: dict[str, list[bytes]],
                                                         name: str) -> None:  # fmt: skip
    assert isinstance(server_store, ServerBackend) and server_store.native_blocks, "18.16 takes Native blocks"
    storer = Storer(server_store, Backoff(0.1, 0.1), SinkStats())
    try:
        batch = _store(storer, name, values[name], 0)
    finally:
        storer.close()
    assert name in batch.native and name not in batch.decoded  # it went as a block
    via_block = _stored(server_store, name)
    server_store.execute(f"TRUNCATE TABLE {server_store.database}.{name}")
    table = TABLES[name]
    rows = [table.row(schemas.decode(v, expected=table.record)[1]) for v in values[name]]
    server_store.insert(name, table.columns, transpose(rows), None)
    via_python = _stored(server_store, name)
    assert via_block == via_python and len(via_block) == len(values[name])


def test_an_altered_table_gets_columns_then_new_blocks(server_store: Backend, values: dict[str, list[bytes]]) -> None:
    reports = values["reports"]
    storer = Storer(server_store, Backoff(0.1, 0.1), SinkStats())
    try:
        _store(storer, "reports", reports[:50], 0)  # learns the types
        server_store.execute(f"ALTER TABLE {server_store.database}.reports MODIFY COLUMN public_port UInt32")
        refused = _store(storer, "reports", reports[50:100], 50)  # made with the old types
        again = _store(storer, "reports", reports[100:150], 100)
    finally:
        storer.close()
    assert "reports" in refused.decoded and "reports" not in refused.native  # sent as columns
    assert dict(again.native["reports"][0])["public_port"] == "UInt32"  # a block of the new types
    stored = server_store.query(f"SELECT report_id FROM {server_store.database}.reports ORDER BY report_id")
    assert [r for (r,) in stored.rows] == sorted(schemas.decode(v)[1]["report_id"] for v in reports[:150])
