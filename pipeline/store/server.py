"""The ClickHouse server backend: clickhouse-driver's native protocol, columnar inserts.

Errors are wrapped once, here: network failures, timeouts and the server's "busy" codes become
StoreUnavailable (the client reconnects on the next call); anything else becomes StoreError.
Timestamps go as epoch milliseconds to DateTime64(3), or as whole seconds to DateTime on servers
without DateTime64. The password comes from LT_CLICKHOUSE_PASSWORD or `password_file`.

Two ways to insert: `insert` hands Python columns to clickhouse-driver's column writers;
`insert_native` sends a block already serialized in ClickHouse's Native format (made by chdb from
the Kafka values, `pipeline.store.avrosql`) as the Data packet of clickhouse-driver's INSERT, so
no Python code runs per value. The second needs a block that is byte for byte what the server
expects: `native_types` offers it only on an uncompressed connection older than custom
serializations (protocol 54454: newer servers want a flag per column that the Native format does
not carry) and for tables whose every column type serializes the same in chdb as in the server
(plain numbers, String, Date, DateTime, Array(String), Nullable of those: not LowCardinality,
whose Native form changed). The server's INSERT header is checked against the types the block was
made with; a mismatch (the table was altered meanwhile) raises NativeMismatch before any data is
sent, and the caller inserts the batch the other way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.config import ClickHouseSettings
from pipeline.store.backend import Column, Kind, NativeTypes, QueryResult, plain
from pipeline.store.capabilities import Capabilities
from pipeline.store.errors import NativeMismatch, StoreError, StoreUnavailable, first_line
from pipeline.store.sqltext import literal
from pipeline.store.tables import Table

T = TypeVar("T")
CUSTOM_SERIALIZATION_REVISION = 54454
_PLAIN = r"(?:U?Int(?:8|16|32|64)|Float(?:32|64)|String|Date|DateTime(?:\('[A-Za-z0-9_/+-]+'\))?)"
_NATIVE_SAFE = re.compile(rf"{_PLAIN}|Nullable\({_PLAIN}\)|Array\(String\)")

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
        connection = self.client.connection
        self.native_blocks = (not connection.compression
                              and connection.server_info.used_revision < CUSTOM_SERIALIZATION_REVISION)  # fmt: skip

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

    def native_types(self, table: Table) -> NativeTypes | None:
        """The server's (name, type) of `table.columns` if Native blocks of them can be sent, else None."""
        if not self.native_blocks:
            return None
        sql = (f"SELECT name, type FROM system.columns WHERE database = {literal(self.database)} "
               f"AND table = {literal(table.name)}")  # fmt: skip
        server = dict(self._call(lambda: self.client.execute(sql)))
        types = tuple((c.name, server.get(c.name, "")) for c in table.columns)
        return types if all(_NATIVE_SAFE.fullmatch(t) for _, t in types) else None

    def insert_native(self, table: str, types: NativeTypes, block: bytes, rows: int, token: str | None) -> int:
        """Insert one Native block (made with `types`, holding `rows` rows); NativeMismatch when
        the server's columns are no longer `types` (nothing is inserted then)."""
        names = ", ".join(name for name, _ in types)
        settings = {"insert_deduplication_token": token} if token and self.capabilities.dedup_token else {}
        sql = f"INSERT INTO {self.database}.{table} ({names}) VALUES"
        self._call(lambda: self._send_block(sql, types, block, settings))
        return rows

    def _send_block(self, sql: str, types: NativeTypes, block: bytes, settings: dict[str, Any]) -> None:
        """clickhouse-driver's INSERT (`Client.process_insert_query`) with a ready-made block."""
        from clickhouse_driver.block import BlockInfo, ColumnOrientedBlock
        from clickhouse_driver.protocol import ClientPacketTypes
        from clickhouse_driver.writer import write_binary_str, write_varint

        client = self.client
        with client.disconnect_on_error(sql, settings):  # a failure mid-insert drops the connection
            connection = client.connection
            connection.send_query(sql)
            connection.send_external_tables(None)
            header = client.receive_sample_block()
            if tuple(tuple(c) for c in header.columns_with_types) != types:
                raise NativeMismatch(f"{sql.split(' (')[0]}: the table's columns changed")
            write_varint(ClientPacketTypes.DATA, connection.fout)
            write_binary_str("", connection.fout)  # no temporary table
            BlockInfo().write(connection.fout)
            connection.fout.write(block)
            connection.fout.flush()
            client.receive_profile_events()
            connection.send_data(ColumnOrientedBlock())  # an empty block ends the data
            client.receive_profile_events()
            client.receive_end_of_insert_query()

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

