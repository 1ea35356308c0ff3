"""The embedded backend: chdb (current ClickHouse in this process) on a directory.

Inserts go as one Arrow IPC stream per batch through chdb's streaming insert (the data is parsed
by ClickHouse in C++; Python only builds the Arrow arrays); queries come back as Arrow too.

Two properties of chdb shape this module. It hosts one database directory per process at a
time, so sessions are shared per path and opening a second path while one is open is a
StoreError. And it reads a `config.xml` from the current directory when it starts, so the import
and the session are made from inside the store directory, never from wherever the caller stands
(the ClickHouse server's state directory has such a file).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.store.backend import Column, Kind, QueryResult, plain
from pipeline.store.capabilities import Capabilities
from pipeline.store.errors import StoreError, first_line
from pipeline.store.tables import Table
from pipeline.store.template import IDENTIFIER

_lock = threading.Lock()
_open: dict[Path, tuple[Any, int]] = {}  # path → (chdb Session, users)
_scratch: set[Path] = set()  # private directories opened by `acquire_any`, removed when released


@contextmanager
def _inside(directory: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)


def _acquire(path: Path) -> Any:
    with _lock:
        if path in _open:
            session, users = _open[path]
            _open[path] = (session, users + 1)
            return session
        if _open:
            other = next(iter(_open))
            raise StoreError(f"chdb already holds {other} in this process; close it before opening {path}")
        path.mkdir(parents=True, exist_ok=True)
        with _inside(path):
            from chdb import session as chdb_session

            try:
                session = chdb_session.Session(str(path))  # type: ignore[no-untyped-call]
            except Exception as exc:  # chdb raises RuntimeError subclasses with ClickHouse's text
                raise StoreError(f"cannot open the embedded store at {path}: {first_line(exc)}") from exc
        _open[path] = (session, 1)
        return session


def _release(path: Path) -> None:
    with _lock:
        session, users = _open[path]
        if users > 1:
            _open[path] = (session, users - 1)
            return
        del _open[path]
        session.close()
        if path in _scratch:
            _scratch.discard(path)
            shutil.rmtree(path, ignore_errors=True)


def acquire_any() -> tuple[Path, Any]:
    """A chdb session for work that needs no store (decoding): the open one, else a private one.

    Release it with `release(path)`; a private directory is removed with its last user."""
    with _lock:
        if _open:
            path = next(iter(_open))
            session, users = _open[path]
            _open[path] = (session, users + 1)
            return path, session
    path = Path(tempfile.mkdtemp(prefix="lt-chdb-"))
    _scratch.add(path)
    return path, _acquire(path)


release = _release


class ChdbBackend:
    def __init__(self, path: Path, database: str) -> None:
        if not IDENTIFIER.match(database):
            raise StoreError(f"database name {database!r} is not a plain identifier")
        self.path = path.resolve()
        self.database = database
        self.session = _acquire(self.path)
        self.closed = False
        version = self.query("SELECT version() AS v").scalar()
        self.capabilities = Capabilities.from_version(str(version))

    def _run(self, sql: str, fmt: str) -> Any:
        if self.closed:
            raise StoreError("the embedded store is closed")
        try:
            return self.session.query(sql, fmt)
        except Exception as exc:  # ChdbError (a RuntimeError) carries ClickHouse's message
            raise StoreError(f"embedded ClickHouse: {first_line(exc)}") from exc

    def execute(self, sql: str) -> None:
        self._run(sql, "CSV")

    def query(self, sql: str) -> QueryResult:
        import pyarrow as pa

        data = self._run(sql, "ArrowStream").bytes()
        if not data:
            return QueryResult([], [])
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        columns = [[plain(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
        return QueryResult(list(table.column_names), list(zip(*columns, strict=True)))

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        import pyarrow as pa

        arrays = [pa.array(values, type=_arrow_type(c.kind)) for c, values in zip(columns, data, strict=True)]
        batch = pa.table(arrays, names=[c.name for c in columns])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_table(batch)
        names = ", ".join(c.name for c in columns)
        settings = f" SETTINGS insert_deduplication_token = '{token}'" if token else ""
        if self.closed:
            raise StoreError("the embedded store is closed")
        try:
            with self.session.send_insert(f"INSERT INTO {self.database}.{table} ({names}){settings}",
                                          "ArrowStream") as inserter:  # fmt: skip
                inserter.append(sink.getvalue().to_pybytes())
                inserter.finish()
        except Exception as exc:
            raise StoreError(f"embedded ClickHouse insert into {table}: {first_line(exc)}") from exc
        return int(batch.num_rows)

    def insert_avro(self, table: Table, values: Sequence[bytes], token: str | None) -> int:
        """Insert single-object `values` through `table.sql`: decoded and inserted inside ClickHouse."""
        from pipeline.store.avrosql import Scratch, select_sql

        names = ", ".join(c.name for c in table.columns)
        dedup = f", insert_deduplication_token = '{token}'" if token else ""
        with Scratch(table.record, values) as path:
            self._run(f"INSERT INTO {self.database}.{table.name} ({names}) "
                      f"{select_sql(table, path, timestamps=True)}{dedup}", "CSV")  # fmt: skip
        return len(values)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _release(self.path)


def _arrow_type(kind: Kind) -> Any:
    import pyarrow as pa

    return {
        Kind.STRING: pa.string(),
        Kind.BYTES: pa.binary(),
        Kind.UINT8: pa.uint8(),
        Kind.UINT16: pa.uint16(),
        Kind.UINT32: pa.uint32(),
        Kind.UINT64: pa.uint64(),
        Kind.FLOAT64_OR_NULL: pa.float64(),
        Kind.DATE: pa.date32(),
        Kind.TIMESTAMP: pa.timestamp("ms", tz="UTC"),
        Kind.TIMESTAMP_OR_NULL: pa.timestamp("ms", tz="UTC"),
        Kind.STRINGS: pa.list_(pa.string()),
    }[kind]

