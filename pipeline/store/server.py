"""The ClickHouse server backend: clickhouse-driver's native protocol, columnar inserts.

Errors are wrapped once, here: network failures, timeouts and the server's "busy" codes become
StoreUnavailable (the client reconnects on the next call); anything else becomes StoreError.
Timestamps go as epoch milliseconds to DateTime64(3), or as whole seconds to DateTime on servers
without DateTime64. The password comes from LT_CLICKHOUSE_PASSWORD or `password_file`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.config import ClickHouseSettings
from pipeline.store.backend import Column, Kind, QueryResult, plain
from pipeline.store.capabilities import Capabilities
from pipeline.store.errors import StoreError, StoreUnavailable, first_line

T = TypeVar("T")

# Server error codes after which the same statement may succeed later.
RETRYABLE_CODES = frozenset({
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED (server shutting down)
    425,  # SYSTEM_ERROR
})


def _password(settings: ClickHouseSettings) -> str:
    if settings.password_file is not None:
        try:
            return settings.password_file.read_text().strip()
        except OSError as exc:
            raise StoreError(f"cannot read {settings.password_file}: {exc.strerror}") from None
    return os.environ.get("LT_CLICKHOUSE_PASSWORD", "")


class ServerBackend:
    def __init__(self, settings: ClickHouseSettings) -> None:
        from clickhouse_driver import Client

        self.database = settings.database
        self.where = f"{settings.host}:{settings.port}"
        self.client = Client(
            host=settings.host, port=settings.port, user=settings.user, password=_password(settings),
            secure=settings.secure, connect_timeout=settings.connect_timeout_s,
            send_receive_timeout=max(30, settings.connect_timeout_s), client_name="lookthrough-store",
        )  # fmt: skip
        version = self._call(lambda: self.client.execute("SELECT version()"))[0][0]
        self.capabilities = Capabilities.from_version(str(version))

    def _call(self, action: Callable[[], T]) -> T:
        from clickhouse_driver import errors

        try:
            return action()
        except errors.ServerException as exc:
            if exc.code in RETRYABLE_CODES:
                self.client.disconnect()
                raise StoreUnavailable(f"ClickHouse at {self.where} is busy: {first_line(exc)}") from exc
            raise StoreError(f"ClickHouse at {self.where}: {first_line(exc)}") from exc
        except (errors.NetworkError, errors.SocketTimeoutError, errors.UnexpectedPacketFromServerError,
                EOFError, OSError) as exc:  # fmt: skip
            self.client.disconnect()
            raise StoreUnavailable(f"ClickHouse at {self.where} unreachable: {first_line(exc)}") from exc
        except errors.Error as exc:
            raise StoreError(f"ClickHouse at {self.where}: {first_line(exc)}") from exc

    def execute(self, sql: str) -> None:
        self._call(lambda: self.client.execute(sql))

    def query(self, sql: str) -> QueryResult:
        rows, types = self._call(lambda: self.client.execute(sql, with_column_types=True))
        return QueryResult([name for name, _ in types], [tuple(plain(v) for v in row) for row in rows])

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        names = ", ".join(c.name for c in columns)
        values = [self._convert(c.kind, values) for c, values in zip(columns, data, strict=True)]
        settings = {"insert_deduplication_token": token} if token and self.capabilities.dedup_token else {}
        sql = f"INSERT INTO {self.database}.{table} ({names}) VALUES"
        self._call(lambda: self.client.execute(sql, values, columnar=True, settings=settings))
        return len(data[0]) if data else 0

    def _convert(self, kind: Kind, values: list[Any]) -> list[Any]:
        if self.capabilities.datetime64:
            return values
        # DateTime holds whole seconds: the milliseconds are dropped on old servers.
        if kind is Kind.TIMESTAMP:
            return [v // 1000 for v in values]
        if kind is Kind.TIMESTAMP_OR_NULL:
            return [None if v is None else v // 1000 for v in values]
        return values

    def close(self) -> None:
        self.client.disconnect()

