"""One protocol over the two ways to reach ClickHouse: a server (clickhouse-driver) or chdb.

`connect(settings)` returns a `ServerBackend` when `settings.host` is set and a `ChdbBackend` on
`settings.path` otherwise. Both take columns as Python lists in the conventions of `Kind`
(timestamps as epoch milliseconds, dates as `datetime.date`) and return query rows as plain Python
values. Failures surface as StoreError, or StoreUnavailable when retrying may help.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from pipeline.config import ClickHouseSettings
from pipeline.store.capabilities import Capabilities


class Kind(Enum):
    """How a column travels from the sink to a backend."""

    STRING = "String"
    BYTES = "bytes"  # String column fed raw bytes (original Kafka values)
    UINT8 = "UInt8"
    UINT16 = "UInt16"
    UINT32 = "UInt32"
    UINT64 = "UInt64"
    FLOAT64_OR_NULL = "Nullable(Float64)"
    DATE = "Date"  # datetime.date
    TIMESTAMP = "timestamp"  # int epoch milliseconds (UTC)
    TIMESTAMP_OR_NULL = "Nullable(timestamp)"
    STRINGS = "Array(String)"


NativeTypes = tuple[tuple[str, str], ...]
"""A server table's (column name, ClickHouse type) for a Table's columns, in their order."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Column names and rows of a query, values as plain Python (lists, date, aware datetime)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Backend(Protocol):
    database: str
    capabilities: Capabilities

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing (DDL, ALTER)."""

    def query(self, sql: str) -> QueryResult:
        """Run one SELECT."""

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        """Insert `data` (one list per column, same order as `columns`) into `database.table`.

        `token` is a deterministic identity of the rows (their Kafka offset ranges): where the
        server supports it, a second insert with the same token is dropped by ClickHouse itself.
        Returns the number of rows.
        """

    def close(self) -> None: ...


def connect(settings: ClickHouseSettings) -> Backend:
    """The configured backend, connected and with its capabilities detected (one `SELECT version()`)."""
    if settings.host:
        from pipeline.store.server import ServerBackend

        return ServerBackend(settings)
    from pipeline.store.embedded import ChdbBackend

    return ChdbBackend(settings.path, settings.database)


def plain(value: Any) -> Any:
    """A query value as plain Python: tuples to lists, datetimes aware in `datetime.UTC`."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value
