"""Record → row, both ways: the Python mapping and the SQL mapping (read by ClickHouse's Avro
format in chdb, into columns for the server backend or inside the embedded backend's INSERT) give
the same rows for the same pipeline outputs; and a batch ClickHouse cannot read, or whose strings
the column layout cannot carry, falls back to Python, record by record, skipping only the bad
record.

The records are real outputs of `Processor` over generated reports (with missing items, IPv6,
corrections and every defect class), so every field shape the pipeline emits is covered.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pipeline import schemas
from pipeline.generate import PlanConfig, plan_reports
from pipeline.store.avrosql import HEADER_FIELD, AvroReader, _arrays, container
from pipeline.store.backend import Column, Kind, NativeTypes, QueryResult
from pipeline.store.batch import Batch
from pipeline.store.capabilities import Capabilities
from pipeline.store.embedded import ChdbBackend
from pipeline.store.errors import NativeMismatch, StoreError
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


def python_rows(name: str, values: Sequence[bytes]) -> list[tuple[Any, ...]]:
    table = TABLES[name]
    return [table.row(schemas.decode(v, expected=table.record)[1]) for v in values]


def as_python(value: Any) -> Any:
    """A server column value in the Python mapping's terms: UTF-8 bytes as text, tuples as lists."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, tuple):
        return [as_python(v) for v in value]
    return value


@pytest.fixture(scope="module")
def reader(chdb_store: ChdbBackend) -> Iterator[AvroReader]:
    reader = AvroReader()  # shares the module's chdb session
    try:
        yield reader
    finally:
        reader.close()


@pytest.mark.parametrize("name", ["reports", "deliveries"])
def test_sql_mapping_equals_python_mapping(outputs: Outputs, reader: AvroReader, name: str) -> None:
    columns = reader.columns(TABLES[name], outputs[name])
    rows = list(zip(*columns, strict=True))
    assert [tuple(as_python(v) for v in row) for row in rows] == python_rows(name, outputs[name])
    # The layout clickhouse-driver gets: strings as UTF-8 bytes, arrays as tuples, lists per column.
    for column, values in zip(TABLES[name].columns, columns, strict=True):
        assert isinstance(values, list)
        kinds = {type(v) for v in values}
        if column.kind is Kind.STRING:
            assert kinds == {bytes}, column.name
        elif column.kind is Kind.STRINGS:
            assert kinds == {tuple} and all(type(s) is bytes for v in values for s in v), column.name


def test_an_empty_batch_reads_as_empty_columns(reader: AvroReader) -> None:
    assert reader.columns(TABLES["reports"], []) == [[] for _ in TABLES["reports"].columns]


def test_odd_values_survive_the_column_layout(outputs: Outputs, reader: AvroReader) -> None:
    """Empty and non-ASCII strings, empty and longer arrays, missing coordinates, and a string of a
    length that needs a two-byte varint: each read back as the Python mapping reads it."""
    base = schemas.decode(outputs["reports"][0], expected="lookthrough.TerminalRecord")[1]
    odd = [
        {**base, "device_name": "", "os_version": "Windows 11 专业版", "private_ips": [], "macs": [],
         "latitude": None, "longitude": None, "trading_codes": {}},
        {**base, "device_name": "x" * 300, "private_ips": ["10.0.0.1", "", "10.0.0.3"], "flags": ["", ""],
         "latitude": 0.0, "longitude": -121.5, "trading_codes": {"SHFE": "", "DCE": "12345678", "CFFEX": "9"}},
        {**base, "macs": ["AABBCCDDEEFF"], "warnings": ["W406"], "correction_of": "0606-00000001"},
    ]  # fmt: skip
    values = [schemas.encode("lookthrough.TerminalRecord", datum) for datum in odd]
    columns = reader.columns(TABLES["reports"], values)
    assert [tuple(as_python(v) for v in row) for row in zip(*columns, strict=True)] == python_rows("reports", values)


def test_a_string_holding_nul_is_refused(outputs: Outputs, reader: AvroReader) -> None:
    """NUL separates strings in the layout: a batch with one is left to the Python path."""
    datum = schemas.decode(outputs["reports"][0], expected="lookthrough.TerminalRecord")[1]
    for field in ("device_name", "private_ips"):
        value = "a\0b" if field == "device_name" else ["a\0b"]
        bad = schemas.encode("lookthrough.TerminalRecord", {**datum, field: value})
        with pytest.raises(StoreError):
            reader.columns(TABLES["reports"], [outputs["reports"][1], bad])


# The types a ClickHouse 18.16 server reports for the legacy DDL's columns (`{{ts}}` is DateTime('UTC')).
LEGACY_TYPES = {Kind.STRING: "String", Kind.BYTES: "String", Kind.UINT8: "UInt8", Kind.UINT16: "UInt16",
                Kind.UINT32: "UInt32", Kind.UINT64: "UInt64", Kind.DATE: "Date", Kind.TIMESTAMP: "DateTime('UTC')",
                Kind.TIMESTAMP_OR_NULL: "Nullable(DateTime('UTC'))", Kind.FLOAT64_OR_NULL: "Nullable(Float64)",
                Kind.STRINGS: "Array(String)"}  # fmt: skip


def legacy_types(name: str) -> NativeTypes:
    return tuple((c.name, LEGACY_TYPES[c.kind]) for c in TABLES[name].columns)


def read_native(reader: AvroReader, name: str, block: bytes) -> list[tuple[Any, ...]]:
    """The rows of a Native block, read back by chdb, in the Python mapping's terms (timestamps as
    epoch seconds: the legacy DateTime holds no milliseconds)."""
    exprs = [f"toUnixTimestamp({c.name})" if c.kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_OR_NULL) else c.name
             for c in TABLES[name].columns]  # fmt: skip
    with tempfile.NamedTemporaryFile(suffix=".native") as fh:
        fh.write(block)
        fh.flush()
        result = reader.session.query(f"SELECT {', '.join(exprs)} FROM file('{fh.name}', 'Native')", "JSONCompact")
    return [tuple(row) for row in json.loads(result.bytes())["data"]]


def seconds(name: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Python-mapped rows as `read_native` returns them: epoch seconds, dates as JSON gives them."""
    kinds = [c.kind for c in TABLES[name].columns]

    def one(kind: Kind, v: Any) -> Any:
        if v is None:
            return None
        if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_OR_NULL):
            return v // 1000
        if kind is Kind.DATE:
            return v.isoformat()
        return v

    return [tuple(one(k, v) for k, v in zip(kinds, row, strict=True)) for row in rows]


@pytest.mark.parametrize("name", ["reports", "deliveries"])
def test_a_native_block_holds_the_python_mappings_rows(outputs: Outputs, reader: AvroReader, name: str) -> None:
    block = reader.native(TABLES[name], outputs[name], legacy_types(name))
    assert read_native(reader, name, block) == seconds(name, python_rows(name, outputs[name]))


def test_a_native_block_refuses_a_value_out_of_its_columns_range(outputs: Outputs, reader: AvroReader) -> None:
    """Numbers are cast with accurateCast: 70000 does not fit UInt16, and is not wrapped to 4464."""
    datum = schemas.decode(outputs["reports"][0], expected="lookthrough.TerminalRecord")[1]
    bad = schemas.encode("lookthrough.TerminalRecord", {**datum, "public_port": 70000})
    with pytest.raises(StoreError):
        reader.native(TABLES["reports"], [outputs["reports"][1], bad], legacy_types("reports"))


def test_arrays_from_their_flat_items() -> None:
    assert _arrays([b""], [0, 0]) == [(), ()]
    assert _arrays([b"a", b"b"], [1, 1]) == [(b"a",), (b"b",)]
    assert _arrays([b"a", b"b"], [1, 0, 1]) == [(b"a",), (), (b"b",)]
    assert _arrays([b"a", b"b", b"", b"c"], [0, 3, 1]) == [(), (b"a", b"b", b""), (b"c",)]
    with pytest.raises(StoreError):
        _arrays([b"a", b"b", b"c"], [1, 1])  # a NUL inside an item split it in two


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


def test_container_holds_the_values(outputs: Outputs) -> None:
    """Each single-object value is one record of the container: its header, then the record."""
    import io

    from fastavro import reader

    values = outputs["deliveries"][:5]
    records = list(reader(io.BytesIO(container("lookthrough.ExchangeRecord", values))))
    assert [r.pop(HEADER_FIELD) for r in records] == [v[: schemas.HEADER_LEN] for v in values]
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


def store_reports(backend: Any, values: list[bytes], stats: SinkStats) -> Any:
    """Store `values` as one batch of raw reports through `backend`, as the sink's threads do."""
    storer = Storer(backend, Backoff(0.1, 0.1), stats)
    try:
        batch = Batch(raw={"reports": values}, first={("t", 0): 0}, last={("t", 0): len(values) - 1},
                      records=len(values))  # fmt: skip
        assert storer.store(batch, threading.Event(), retry=False)
    finally:
        storer.close()
    return backend


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
    store_reports(backend, values, stats)
    assert stats.skipped == 1
    if backend_kind == "server":
        stored = [r[4] for r in backend.inserted["reports"]]
    else:
        stored = [r for (r,) in chdb_store.query(f"SELECT report_id FROM {chdb_store.database}.reports").rows]
    assert sorted(stored) == sorted(schemas.decode(v)[1]["report_id"] for v in outputs["reports"][:50])


def test_the_server_gets_the_python_mappings_rows(outputs: Outputs) -> None:
    stats = SinkStats()
    backend = store_reports(ColumnsBackend(), list(outputs["reports"]), stats)
    stored = [tuple(as_python(v) for v in row) for row in backend.inserted["reports"]]
    assert stored == python_rows("reports", outputs["reports"]) and stats.skipped == 0


def test_a_batch_the_layout_cannot_carry_is_decoded_in_python(outputs: Outputs) -> None:
    datum = schemas.decode(outputs["reports"][3], expected="lookthrough.TerminalRecord")[1]
    values = list(outputs["reports"][:20])
    values[3] = schemas.encode("lookthrough.TerminalRecord", {**datum, "device_name": "a\0b"})
    stats = SinkStats()
    backend = store_reports(ColumnsBackend(), values, stats)
    stored = [tuple(as_python(v) for v in row) for row in backend.inserted["reports"]]
    assert stored == python_rows("reports", values) and stats.skipped == 0
    names = [c.name for c in TABLES["reports"].columns]
    assert stored[3][names.index("device_name")] == "a\0b"


class NativeBackend(ColumnsBackend):
    """A server-like backend that takes Native blocks; its first `refusals` blocks meet an altered
    table (NativeMismatch)."""

    def __init__(self, refusals: int = 0) -> None:
        super().__init__()
        self.refusals = refusals
        self.asked = 0
        self.blocks: list[tuple[str, NativeTypes, bytes, int]] = []

    def native_types(self, table: Any) -> NativeTypes:
        self.asked += 1
        return legacy_types(table.name)

    def insert_native(self, table: str, types: NativeTypes, block: bytes, rows: int, token: str | None) -> int:
        if self.refusals:
            self.refusals -= 1
            raise NativeMismatch(f"{table}: the table's columns changed")
        self.blocks.append((table, types, block, rows))
        return rows


def test_a_server_that_takes_native_blocks_gets_one_per_raw_part(outputs: Outputs, reader: AvroReader) -> None:
    backend = NativeBackend()
    stats = SinkStats()
    store_reports(backend, list(outputs["reports"]), stats)
    [(table, types, block, rows)] = backend.blocks
    assert (table, types, rows, backend.inserted) == ("reports", legacy_types("reports"), len(outputs["reports"]), {})
    assert read_native(reader, "reports", block) == seconds("reports", python_rows("reports", outputs["reports"]))


def test_an_altered_table_gets_columns_and_its_types_are_asked_again(outputs: Outputs) -> None:
    backend = NativeBackend(refusals=1)
    storer = Storer(backend, Backoff(0.1, 0.1), SinkStats())
    try:
        for i in (0, 1):
            values = list(outputs["reports"][i * 20 : i * 20 + 20])
            batch = Batch(raw={"reports": values}, first={("t", 0): i * 20}, last={("t", 0): i * 20 + 19},
                          records=20)  # fmt: skip
            assert storer.store(batch, threading.Event(), retry=False)
    finally:
        storer.close()
    stored = [tuple(as_python(v) for v in row) for row in backend.inserted["reports"]]
    assert stored == python_rows("reports", outputs["reports"][:20])  # the refused batch, as columns
    assert [rows for _, _, _, rows in backend.blocks] == [20] and backend.asked == 2


class BlockingBackend(ColumnsBackend):
    """A server-like backend whose inserts wait until released."""

    def __init__(self) -> None:
        super().__init__()
        self.inserting, self.release = threading.Event(), threading.Event()

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        self.inserting.set()
        assert self.release.wait(10)
        return super().insert(table, columns, data, token)


def test_decoding_does_not_wait_for_an_insert(outputs: Outputs) -> None:
    """One batch decodes while another is being inserted (the two threads' overlap is the point)."""
    backend = BlockingBackend()
    storer = Storer(backend, Backoff(0.1, 0.1), SinkStats())
    storer.open_reader()
    try:
        first, second = (Batch(raw={"deliveries": list(outputs["deliveries"][i : i + 5])}, first={("t", i): 0},
                               last={("t", i): 4}, records=5) for i in (0, 5))  # fmt: skip
        inserting = threading.Thread(target=storer.store, args=(first, threading.Event(), False))
        inserting.start()
        assert backend.inserting.wait(10)
        decoding = threading.Thread(target=storer._decode, args=(second,))
        decoding.start()
        decoding.join(10)
        decoded = not decoding.is_alive()
        backend.release.set()
        inserting.join(10)
        assert decoded and len(second.decoded["deliveries"][0]) == 5
    finally:
        backend.release.set()
        storer.close()


def test_small_helpers() -> None:
    assert trading_day("20251120") == dt.date(2025, 11, 20)
    # 2025-11-20 16:30 UTC is 00:30 on the 21st in China.
    assert china_date(int(dt.datetime(2025, 11, 20, 16, 30, tzinfo=dt.UTC).timestamp() * 1000)) == dt.date(2025, 11, 21)
    assert reporter_type("SHFE") == "EXCHANGE" and reporter_type("0101") == "FUTURES_COMPANY"

