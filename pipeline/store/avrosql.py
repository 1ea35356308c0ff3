"""Decode a batch of Avro single-object values inside embedded ClickHouse (chdb), in C++.

Input: values of one record type, all written with its current schema (the sink checks their
fingerprint), and a table's `sql` mapping (`pipeline.store.tables`). The bodies, stripped of the
10-byte single-object header, are wrapped in an Avro object container whose header carries the
schema's parsing canonical form, written to a private scratch file, and read by ClickHouse's Avro
format. Output: Python columns in the `Kind` conventions (`AvroReader.columns`, for the server
backend), or the SELECT to put under an INSERT (`select_sql`, for the embedded backend).
Errors: StoreError when ClickHouse cannot read the batch; the sink then decodes it in Python.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pipeline import schemas
from pipeline.store.backend import Kind
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


@cache
def _header(record: str) -> bytes:
    from fastavro.schema import to_parsing_canonical_form

    schema = to_parsing_canonical_form(schemas.schema_json(record)).encode()
    meta = _long(2) + _bytes(b"avro.schema") + _bytes(schema) + _bytes(b"avro.codec") + _bytes(b"null") + _long(0)
    return b"Obj\x01" + meta + _SYNC


def container(record: str, values: Sequence[bytes]) -> bytes:
    """An Avro object container holding the bodies of single-object `values` as one block."""
    body = b"".join([v[schemas.HEADER_LEN :] for v in values])
    return _header(record) + _long(len(values)) + _long(len(body)) + body + _SYNC


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
    # The schema cache is keyed by path, and our paths are reused for other batches.
    return (f"SELECT {', '.join(exprs)} FROM file({quote(str(path))}, 'Avro') "
            f"SETTINGS schema_inference_use_cache_for_file = 0, max_threads = 1")  # fmt: skip


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
    """Columns of a batch, decoded by chdb; holds a chdb session until `close`."""

    def __init__(self) -> None:
        from pipeline.store.embedded import acquire_any

        self.path, self.session = acquire_any()
        self.closed = False

    def columns(self, table: Table, values: Sequence[bytes]) -> list[list[Any]]:
        import pyarrow as pa

        with Scratch(table.record, values) as path:
            try:
                data = self.session.query(select_sql(table, path, timestamps=False), "ArrowStream").bytes()
            except Exception as exc:  # ChdbError carries ClickHouse's message
                raise StoreError(f"chdb cannot read the {table.record} batch: {first_line(exc)}") from exc
        arrow = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        if arrow.num_rows != len(values):
            raise StoreError(f"chdb read {arrow.num_rows} of {len(values)} {table.record} records")
        return [_python(arrow.column(i).combine_chunks(), c.kind) for i, c in enumerate(table.columns)]

    def close(self) -> None:
        if not self.closed:
            from pipeline.store.embedded import release

            self.closed = True
            release(self.path)


def _python(array: Any, kind: Kind) -> list[Any]:
    """An Arrow array as a list in the `Kind` conventions, avoiding per-value Arrow scalars."""
    if kind is Kind.STRINGS:
        offsets = array.offsets.to_numpy()
        flat = array.flatten().to_numpy(zero_copy_only=False).tolist()
        base = int(offsets[0])
        bounds = (offsets - base).tolist()
        empty: list[Any] = []  # shared by every empty cell: the columns are only read
        return [flat[a:b] if b > a else empty for a, b in itertools.pairwise(bounds)]
    if kind in (Kind.FLOAT64_OR_NULL, Kind.TIMESTAMP_OR_NULL) or array.null_count:
        return list(array.to_pylist())
    return list(array.to_numpy(zero_copy_only=False).tolist())
