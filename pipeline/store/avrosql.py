"""Decode a batch of Avro single-object values inside embedded ClickHouse (chdb), in C++.

Input: values of one record type, all written with its current schema (the sink checks their
fingerprint), and a table's `sql` mapping (`pipeline.store.tables`). The values are wrapped in an
Avro object container whose schema is the record's with a leading fixed field that takes each
value's 10-byte single-object header (`container_schema`), written to a private scratch file, and
read by ClickHouse's Avro format. Output: the SELECT to put under an INSERT (`select_sql`, for the
embedded backend), a block in ClickHouse's Native format with the server table's own column types
(`AvroReader.native`, for a server that takes it: `pipeline.store.server`), or Python columns for
clickhouse-driver (`AvroReader.columns`, for any other server).

`AvroReader.columns` asks for the whole batch as one row of one value per column, laid out so
that Python turns each into a list with a C call or two and no Python code per value: strings
joined by NUL (split again by `bytes.split`), numbers as arrays (`struct.unpack_from`), arrays of
strings flattened plus their lengths. Why: converting ClickHouse's output value by value (Arrow
scalars, or lists built in Python) cost more than the decoding saved. The columns keep `Kind`'s
conventions but strings stay the UTF-8 bytes ClickHouse holds (clickhouse-driver writes bytes as
they are: nothing is decoded here to be encoded again there) and arrays are tuples.

`AvroReader.native` casts every column to the server's type in ClickHouse (numbers with
`accurateCast`, so a value out of its column's range fails as it would in clickhouse-driver) and
returns the block's bytes: column count, row count, then per column its name, type and data, which
is also the body of a Data packet of the native protocol before custom serializations (54454).

Errors: StoreError when ClickHouse cannot read the batch, a string holds a NUL (the join would be
ambiguous), a value does not fit its column, or the block is not one block of the batch's rows;
the sink then decodes the batch in Python, record by record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from pipeline import schemas
from pipeline.store.backend import Kind, NativeTypes
from pipeline.store.errors import StoreError, first_line
from pipeline.store.sqltext import quote
from pipeline.store.tables import Table

_SYNC = b"lookthrough-sync"  # any 16 bytes; the container has one block
_serial = itertools.count()


def _long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes(data: bytes) -> bytes:
    return _long(len(data)) + data


HEADER_FIELD = "lt_single_object_header"
"""The container's schema is the record's with this first field, fixed(10): each single-object
value, header and all, is then one record of it, and the values go in unsliced (slicing off the
headers copied every value once more)."""


@cache
def container_schema(record: str) -> dict[str, Any]:
    schema = schemas.schema_json(record)
    header = {"type": "fixed", "name": "LtSingleObjectHeader", "size": schemas.HEADER_LEN}
    return {**schema, "fields": [{"name": HEADER_FIELD, "type": header}, *schema["fields"]]}


@cache
def _header(record: str) -> bytes:
    from fastavro.schema import to_parsing_canonical_form

    schema = to_parsing_canonical_form(container_schema(record)).encode()
    meta = _long(2) + _bytes(b"avro.schema") + _bytes(schema) + _bytes(b"avro.codec") + _bytes(b"null") + _long(0)
    return b"Obj\x01" + meta + _SYNC


def container(record: str, values: Sequence[bytes]) -> bytes:
    """An Avro object container holding single-object `values` as one block (records of
    `container_schema`)."""
    size = sum(map(len, values))
    return b"".join([_header(record), _long(len(values)), _long(size), *values, _SYNC])


def scratch_dir() -> Path:
    """Where containers are written: memory-backed /dev/shm when there is one."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def select_sql(table: Table, path: Path, *, timestamps: bool) -> str:
    """SELECT of `table.sql` over the container at `path`; `timestamps` turns epoch milliseconds
    into DateTime64 (for an INSERT inside ClickHouse; Python columns keep the integers)."""
    if table.sql is None:
        raise StoreError(f"table {table.name} has no SQL mapping")
    exprs = [
        f"fromUnixTimestamp64Milli({sql}, 'UTC')" if timestamps and c.kind is Kind.TIMESTAMP else sql
        for c, sql in zip(table.columns, table.sql, strict=True)
    ]
    return f"SELECT {', '.join(exprs)} FROM {_avro(path)} SETTINGS {_READ_SETTINGS}"


def _avro(path: Path) -> str:
    return f"file({quote(str(path))}, 'Avro')"


# The schema cache is keyed by path, and our paths are reused for other batches. One thread: every
# aggregate of `columns_sql` sees the rows in the same order, so its columns line up.
_READ_SETTINGS = "schema_inference_use_cache_for_file = 0, max_threads = 1"


class Scratch:
    """A private file for one batch's container, removed afterwards."""

    def __init__(self, record: str, values: Sequence[bytes]) -> None:
        name = f"lt-{os.getpid()}-{next(_serial)}-{record.rsplit('.', 1)[-1]}.avro"
        self.path = scratch_dir() / name
        self.data = container(record, values)

    def __enter__(self) -> Path:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.data)
        return self.path

    def __exit__(self, *_: object) -> None:
        self.path.unlink(missing_ok=True)


class AvroReader:
    """Columns of batches, decoded by chdb; holds a chdb session (made here: importing and starting
    chdb takes a second) until `close`."""

    def __init__(self) -> None:
        from pipeline.store.embedded import acquire_any

        self.path, self.session = acquire_any()
        self.closed = False

    def warm(self, tables: Sequence[Table]) -> None:
        """Read an empty batch of each table: ClickHouse's first query of a kind costs a tenth of a
        second more (parsing the schema, compiling the query), better paid before records wait."""
        for table in tables:
            with contextlib.suppress(StoreError):  # then the first batch pays, as it would anyway
                self.columns(table, [])

    def _read(self, table: Table, values: Sequence[bytes], sql: Callable[[Path], str], fmt: str) -> bytes:
        """The output (in `fmt`) of the query `sql(path)` over the batch written at `path`."""
        with Scratch(table.record, values) as path:
            try:
                data: bytes = self.session.query(sql(path), fmt).bytes()
            except Exception as exc:  # ChdbError carries ClickHouse's message
                raise StoreError(f"chdb cannot read the {table.record} batch: {first_line(exc)}") from exc
        return data

    def columns(self, table: Table, values: Sequence[bytes]) -> list[list[Any]]:
        data = self._read(table, values, lambda path: columns_sql(table, path), "RowBinary")
        with _collector_paused():
            return _Reader(data).columns(table, len(values))

    def native(self, table: Table, values: Sequence[bytes], types: NativeTypes) -> bytes:
        """The batch as one Native block of `types` (the server's (name, type) of `table.columns`)."""
        block = self._read(table, values, lambda path: native_sql(table, path, types), "Native")
        reader = _Reader(block)
        shape = (reader.varint(), reader.varint()) if block else (len(types), 0)
        if shape != (len(types), len(values)):
            raise StoreError(f"chdb made a block of {shape[1]} rows × {shape[0]} columns "
                             f"of {len(values)} {table.record} records")  # fmt: skip
        return block

    def close(self) -> None:
        if not self.closed:
            from pipeline.store.embedded import release

            self.closed = True
            release(self.path)


def _native_expr(kind: Kind, sql: str, server_type: str) -> str:
    """`sql` (in `Kind`'s conventions) as a value of `server_type` (timestamps: DateTime, as
    `pipeline.store.server` sends Native blocks only to servers without DateTime64)."""
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_OR_NULL):  # epoch milliseconds to DateTime's seconds
        sql = f"intDiv({sql}, 1000)"
    elif kind in (Kind.UINT8, Kind.UINT16, Kind.UINT32, Kind.UINT64):
        return f"accurateCast({sql}, {quote(server_type)})"
    return f"CAST({sql}, {quote(server_type)})"


def native_sql(table: Table, path: Path, types: NativeTypes) -> str:
    """SELECT of the batch at `path` as columns named and typed as `types`. The mapping is computed
    in an inner query under private aliases: an outer alias equal to a record field's name (a
    column `trading_codes` made from the field `trading_codes`) would shadow the field."""
    if table.sql is None:
        raise StoreError(f"table {table.name} has no SQL mapping")
    inner = ", ".join(f"{sql} AS lt_c{i}" for i, sql in enumerate(table.sql))
    outer = ", ".join(
        f"{_native_expr(c.kind, f'lt_c{i}', server_type)} AS {name}"
        for i, (c, (name, server_type)) in enumerate(zip(table.columns, types, strict=True))
    )
    # One block: max_block_size above any batch (the caller checks the row count anyway).
    settings = f"{_READ_SETTINGS}, max_block_size = 4194304"
    return f"SELECT {outer} FROM (SELECT {inner} FROM {_avro(path)}) SETTINGS {settings}"


# How each kind travels from chdb: the aggregate expressions over a column's SQL, and how Python
# reads them back (`_Reader`). Numbers and dates as arrays of fixed width: (SQL cast, struct code);
# integers as Int64 whatever their column, so that a value out of its column's range reaches
# clickhouse-driver as it is (and fails there), as on the Python path, rather than wrapped here.
_NUMBERS: dict[Kind, tuple[str, str]] = {
    Kind.UINT8: ("toInt64", "q"), Kind.UINT16: ("toInt64", "q"), Kind.UINT32: ("toInt64", "q"),
    Kind.UINT64: ("toInt64", "q"), Kind.TIMESTAMP: ("toInt64", "q"), Kind.DATE: ("toUInt16", "H"),
    Kind.FLOAT64_OR_NULL: ("toFloat64", "d"), Kind.TIMESTAMP_OR_NULL: ("toInt64", "q"),
}  # fmt: skip
_NULLABLE = (Kind.FLOAT64_OR_NULL, Kind.TIMESTAMP_OR_NULL)


def _aggregates(kind: Kind, sql: str) -> list[str]:
    if kind in (Kind.STRING, Kind.BYTES):
        return [f"arrayStringConcat(groupArray({sql}), '\\0')"]
    if kind is Kind.STRINGS:
        return [f"arrayStringConcat(arrayFlatten(groupArray({sql})), '\\0')", f"groupArray(toUInt32(length({sql})))"]
    cast, _ = _NUMBERS[kind]
    if kind in _NULLABLE:  # the values (any, where null) and which are null
        return [f"groupArray({cast}(ifNull({sql}, 0)))", f"groupArray(toUInt8(isNull({sql})))"]
    return [f"groupArray({cast}({sql}))"]


def columns_sql(table: Table, path: Path) -> str:
    """The batch at `path` as one row: its count, then per column of `table` its aggregates."""
    if table.sql is None:
        raise StoreError(f"table {table.name} has no SQL mapping")
    aggregates = [a for c, sql in zip(table.columns, table.sql, strict=True) for a in _aggregates(c.kind, sql)]
    return f"SELECT count(), {', '.join(aggregates)} FROM {_avro(path)} SETTINGS {_READ_SETTINGS}"


_pause_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while columns are built, and as it was after the last of
    concurrent builds. Why: a batch's arrays are tens of thousands of new tuples; each collection
    they trigger walks the young column lists around them again, which cost a quarter of the
    conversion. Nothing built here can form a cycle."""
    global _pauses, _was_enabled
    with _pause_lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()


_EPOCH = dt.date(1970, 1, 1)
_DATES: dict[int, dt.date] = {}  # day number → date: a handful of trading days


def _date(days: int) -> dt.date:
    date = _DATES.get(days)
    if date is None:
        if len(_DATES) > 4096:
            _DATES.clear()
        date = _DATES[days] = _EPOCH + dt.timedelta(days=days)
    return date


class _Reader:
    """Reads the one RowBinary row of `columns_sql` back into columns."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.p = 0

    def columns(self, table: Table, expected: int) -> list[list[Any]]:
        (count,) = self.fixed("Q", 1)
        if count != expected:
            raise StoreError(f"chdb read {count} of {expected} {table.record} records")
        out = [self.column(c.kind, count) for c in table.columns]
        if self.p != len(self.data):
            raise StoreError(f"chdb returned {len(self.data) - self.p} bytes too many for {table.record}")
        return out

    def column(self, kind: Kind, count: int) -> list[Any]:
        if kind in (Kind.STRING, Kind.BYTES):
            return self.strings(count)
        if kind is Kind.STRINGS:
            flat = self.strings(None)
            lengths = self.array("I")
            return _arrays(flat, lengths)
        _, code = _NUMBERS[kind]
        values = self.array(code)
        if kind is Kind.DATE:
            return list(map(_date, values))
        if kind in _NULLABLE:
            nulls = self.array("B")
            return [None if null else v for v, null in zip(values, nulls, strict=True)] if any(nulls) else list(values)
        return list(values)

    def varint(self) -> int:
        z = shift = 0
        while True:
            b = self.data[self.p]
            self.p += 1
            z |= (b & 0x7F) << shift
            if b < 0x80:
                return z
            shift += 7

    def fixed(self, code: str, count: int) -> tuple[Any, ...]:
        layout = struct.Struct(f"<{count}{code}")
        values = layout.unpack_from(self.data, self.p)
        self.p += layout.size
        return values

    def array(self, code: str) -> tuple[Any, ...]:
        return self.fixed(code, self.varint())

    def strings(self, count: int | None) -> list[bytes]:
        """NUL-joined strings; `count` of them (None: as many as there are)."""
        size = self.varint()
        joined = self.data[self.p : self.p + size]
        self.p += size
        parts = joined.split(b"\0") if count != 0 else []
        if count is not None and len(parts) != count:
            raise StoreError("a string holds a NUL byte")
        return parts


_EMPTY: tuple[bytes, ...] = ()


def _arrays(flat: list[bytes], lengths: Sequence[int]) -> list[tuple[bytes, ...]]:
    """Consecutive runs of `flat` of the given lengths, as tuples. Arrays are mostly empty or of
    one item, which C builds without a Python step per row where a whole column is so."""
    total = sum(lengths)
    if total == 0:
        return [_EMPTY] * len(lengths)  # nothing joined is one empty string: ignore `flat`
    if len(flat) != total:
        raise StoreError("a string in an array holds a NUL byte")
    if max(lengths) == 1:
        singles = zip(flat)  # 1-tuples
        return list(singles) if total == len(lengths) else [next(singles) if n else _EMPTY for n in lengths]
    out: list[tuple[bytes, ...]] = []
    append: Callable[[tuple[bytes, ...]], None] = out.append
    i = 0
    for n in lengths:
        if n == 1:
            append((flat[i],))
            i += 1
        elif n == 0:
            append(_EMPTY)
        else:
            append(tuple(flat[i : i + n]))
            i += n
    return out
