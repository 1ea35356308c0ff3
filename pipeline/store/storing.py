"""Storing one batch, on the sink's background threads: decode what is left, insert every part.

`Storer.store(batch, abandon, retry)` decodes the batch's pending values in Python and, for a
server backend, its raw values in a private chdb (`pipeline.store.avrosql`, started by
`open_reader`): into a Native block of the server's column types where the server takes one
(`NativeInserting`), else into Python columns; the embedded backend decodes raw values inside its
own INSERT. Then one insert per part, one insert at a time (a client is not shared between
threads), skipping parts a previous attempt stored. A Native block refused because its table was
altered since its types were asked (NativeMismatch) is inserted as columns instead. While the
store is unavailable it retries with exponential back-off and jitter, until it succeeds (True),
or is told to give up: `abandon` set, `running` cleared, or `retry` off (False). Other
StoreErrors propagate. A batch ClickHouse cannot read is decoded record by record in Python, so
only a malformed record is skipped (logged, counted), never the batch.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pipeline import schemas
from pipeline.errors import EnvelopeError
from pipeline.store.backend import Backend, NativeTypes
from pipeline.store.batch import Batch
from pipeline.store.errors import NativeMismatch, StoreError, StoreUnavailable
from pipeline.store.tables import TABLES, Row, Table

log = logging.getLogger("pipeline.store.sink")  # one logger for the sink's story


@runtime_checkable
class AvroInserting(Protocol):
    """A backend that decodes and inserts single-object values itself (the embedded one)."""

    def insert_avro(self, table: Table, values: Sequence[bytes], token: str | None) -> int: ...


@runtime_checkable
class NativeInserting(Protocol):
    """A backend that takes blocks in ClickHouse's Native format (the server one, where it can)."""

    def native_types(self, table: Table) -> NativeTypes | None: ...

    def insert_native(self, table: str, types: NativeTypes, block: bytes, rows: int, token: str | None) -> int: ...


@dataclass
class SinkStats:
    rows: dict[str, int] = field(default_factory=dict)
    records: int = 0
    skipped: int = 0
    flushes: int = 0
    retries: int = 0
    first_record_at: float = 0.0
    last_flush_at: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_s(self) -> float:
        """Stored rows per second from the first record read to the last batch stored."""
        span = self.last_flush_at - self.first_record_at
        return self.total_rows / span if span > 0 else 0.0


class Backoff:
    """Exponential back-off with jitter, capped."""

    def __init__(self, initial_s: float, maximum_s: float) -> None:
        self.initial, self.maximum = initial_s, maximum_s

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * 2**attempt) * random.uniform(0.5, 1.0))


def transpose(rows: list[Row]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


class Storer:
    def __init__(self, backend: Backend, backoff: Backoff, stats: SinkStats) -> None:
        self.backend = backend
        self.backoff = backoff
        self.stats = stats
        self.running = True
        self.insert_lock = threading.Lock()
        self.reader_lock = threading.Lock()
        self.reader: Any = None  # AvroReader of a server backend, made by open_reader
        self.native: dict[str, NativeTypes | None] = {}  # per table, what native_types said

    def open_reader(self) -> None:
        """Start the chdb that decodes raw values for a server backend, if not yet started (the
        sink does it before reading: starting chdb takes a second)."""
        if self.reader is not None:  # the usual case, without waiting for a lock
            return
        with self.reader_lock:  # made once; not under the insert lock, or decoding waited for inserts
            if self.reader is None:
                from pipeline.store.avrosql import AvroReader

                self.reader = AvroReader()
                self.reader.warm([table for table in TABLES.values() if table.sql is not None])

    def row(self, table: Table, value: bytes, where: str) -> Row | None:
        """The row of one value decoded in Python; None (logged, counted) when it does not fit."""
        try:
            _, datum = schemas.decode(value, expected=table.record)
            return table.row(datum)
        except (EnvelopeError, KeyError, TypeError, ValueError) as exc:
            self.stats.skipped += 1
            log.warning("skipping a record that does not fit its table",
                        extra={"position": where, "table": table.name, "error": type(exc).__name__})  # fmt: skip
            return None

    def store(self, batch: Batch, abandon: threading.Event, retry: bool) -> bool:
        """Decode the batch, then insert every part of it, retrying while the store is unavailable.
        True when stored; False when given up (stop, rebalance, or `retry` off). Other errors
        propagate."""
        self._decode(batch)
        attempt = 0
        while True:
            try:
                with self.insert_lock:
                    self._insert(batch)
                return True
            except StoreUnavailable as exc:
                if not retry or not self.running or abandon.is_set():
                    log.warning("batch not stored; it will be reread", extra={"error": str(exc)})
                    return False
                delay = self.backoff.delay(attempt)
                attempt += 1
                self.stats.retries += 1
                log.warning("store unavailable; retrying",
                            extra={"error": str(exc), "retry_in_s": round(delay, 2), "attempt": attempt})  # fmt: skip
                abandon.wait(delay)

    def _decode(self, batch: Batch) -> None:
        """Decode the batch while another one is being inserted: pending values in Python; raw
        values in a private chdb for a server backend (the embedded one decodes inside its INSERT)."""
        for name, values in batch.pending.items():
            table = TABLES[name]
            rows = batch.rows.setdefault(name, [])
            rows.extend(row for i, v in enumerate(values) if (row := self.row(table, v, f"item {i}")) is not None)
        batch.pending.clear()
        if isinstance(self.backend, AvroInserting):
            return
        for name, values in batch.raw.items():
            types = self._native_types(TABLES[name])
            self._decode_raw(batch, TABLES[name], values, types)

    def _decode_raw(self, batch: Batch, table: Table, values: list[bytes], types: NativeTypes | None) -> None:
        """Raw values of `table` into a Native block of `types`, or into columns (`types` None)."""
        try:
            self.open_reader()
            if types is not None:
                batch.native[table.name] = (types, self.reader.native(table, values, types))
            else:
                batch.decoded[table.name] = self.reader.columns(table, values)
        except StoreError as exc:
            # ClickHouse could not read the batch (a malformed record?): decode it here, record
            # by record, so one bad record is skipped instead of stopping the sink.
            log.warning("decoding a batch in Python", extra={"table": table.name, "error": str(exc)})
            batch.rows.setdefault(table.name, []).extend(self._python_rows(table, values))
            batch.raw[table.name] = []

    def _python_rows(self, table: Table, values: list[bytes]) -> list[Row]:
        return [row for i, v in enumerate(values) if (row := self.row(table, v, f"batch item {i}")) is not None]

    def _native_types(self, table: Table) -> NativeTypes | None:
        """The server's column types for a Native block of `table`, or None (columns then). Asked
        once per table, under the insert lock (the client is not shared between threads); not
        remembered when the server could not be asked."""
        if table.name in self.native:
            return self.native[table.name]
        if not isinstance(self.backend, NativeInserting):
            return None
        try:
            with self.insert_lock:
                types = self.native[table.name] = self.backend.native_types(table)
        except StoreUnavailable:
            return None
        return types

    def _insert(self, batch: Batch) -> None:
        for name, rows in batch.rows.items():
            part = f"{name}/rows"
            if part not in batch.done and rows:
                self.backend.insert(name, TABLES[name].columns, transpose(rows), batch.token(part))
                batch.done.add(part)
        for name, values in batch.raw.items():
            part = f"{name}/raw"
            if part not in batch.done and values:
                self._insert_raw(batch, TABLES[name], values, batch.token(part))
                batch.done.add(part)

    def _insert_raw(self, batch: Batch, table: Table, values: list[bytes], token: str) -> None:
        if isinstance(self.backend, AvroInserting):
            try:
                self.backend.insert_avro(table, values, token)
            except StoreUnavailable:
                raise
            except StoreError as exc:  # as in _decode: one malformed record must not stop the sink
                log.warning("decoding a batch in Python", extra={"table": table.name, "error": str(exc)})
                self._insert_python(table, values, token)
            return
        native = batch.native.get(table.name)
        if native is not None and isinstance(self.backend, NativeInserting):
            try:
                self.backend.insert_native(table.name, *native, len(values), token)
                return
            except NativeMismatch as exc:  # the table was altered: columns this time, then ask again
                log.warning("inserting a batch as columns", extra={"table": table.name, "error": str(exc)})
                self.native.pop(table.name, None)
                del batch.native[table.name]
                try:
                    batch.decoded[table.name] = self.reader.columns(table, values)
                except StoreError:
                    self._insert_python(table, values, token)
                    return
        self.backend.insert(table.name, table.columns, batch.decoded[table.name], token)

    def _insert_python(self, table: Table, values: list[bytes], token: str) -> None:
        rows = self._python_rows(table, values)
        if rows:
            self.backend.insert(table.name, table.columns, transpose(rows), token + "-python")

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
