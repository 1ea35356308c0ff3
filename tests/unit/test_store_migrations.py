"""The migration runner: discovery, the ledger, checksums, and the DDL against the sink's columns.

The runner is exercised with a recording backend (no server); the DDL is applied for real on
chdb (current ClickHouse), and the column lists the sink inserts are checked against the tables
that DDL created. The same files on the 18.16 server: tests/integration/test_store_pipeline.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline.store.backend import Column, Kind, QueryResult
from pipeline.store.capabilities import Capabilities
from pipeline.store.embedded import ChdbBackend
from pipeline.store.errors import MigrationError
from pipeline.store.migrations import Migration, discover, migrate
from pipeline.store.policy import Retention
from pipeline.store.tables import TABLES

RETENTION = Retention(records=7305, deliveries=30, subscribers=7305)


class RecordingBackend:
    """Executes nothing; keeps the ledger rows the runner inserts."""

    def __init__(self, version: str = "18.16.1") -> None:
        self.database = "lt_fake"
        self.capabilities = Capabilities.from_version(version)
        self.executed: list[str] = []
        self.ledger: list[tuple[int, str]] = []

    def execute(self, sql: str) -> None:
        self.executed.append(sql)

    def query(self, sql: str) -> QueryResult:
        assert "schema_migrations" in sql
        return QueryResult(["version", "checksum"], list(self.ledger))

    def insert(self, table: str, columns: Sequence[Column], data: Sequence[list[Any]], token: str | None) -> int:
        assert table == "schema_migrations"
        self.ledger.append((data[0][0], data[2][0]))
        return 1

    def close(self) -> None: ...


def test_discover_finds_the_numbered_files() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert {"reports", "deliveries", "exchange_daily", "dead_letters", "subscribers"} <= {m.name for m in migrations}


def test_migrate_twice_applies_once() -> None:
    backend = RecordingBackend()
    assert migrate(backend, RETENTION) == [m.version for m in discover()]
    first = len(backend.executed)
    assert migrate(backend, RETENTION) == []
    assert len(backend.executed) == first + 2  # only CREATE DATABASE / ledger IF NOT EXISTS again


def test_an_edited_migration_is_refused() -> None:
    backend = RecordingBackend()
    migrate(backend, RETENTION)
    edited = [Migration(m.version, m.name, m.text + "\n-- edited") for m in discover()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(backend, RETENTION, edited)


def test_gaps_and_stray_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without gaps"):
        discover(tmp_path)
    (tmp_path / "003_c.sql").unlink()
    (tmp_path / "2_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="named"):
        discover(tmp_path)


def test_statements_split_and_drop_comments() -> None:
    text = ("-- a comment; with a semicolon\nCREATE TABLE IF NOT EXISTS {{db}}.a (x UInt8)\nENGINE = Memory;\n\n"
            "CREATE TABLE IF NOT EXISTS {{db}}.b (y UInt8) ENGINE = Memory;\n")  # fmt: skip
    migration = Migration(1, "x", text)
    from pipeline.store.template import Dialect

    statements = migration.statements(Dialect("d", Capabilities.from_version("18.16.1"), RETENTION))
    assert statements == ["CREATE TABLE IF NOT EXISTS d.a (x UInt8)\nENGINE = Memory",
                          "CREATE TABLE IF NOT EXISTS d.b (y UInt8) ENGINE = Memory"]  # fmt: skip


@pytest.fixture(scope="module")
def chdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb-migrations"), "lt_unit_migrations")
    try:
        yield backend
    finally:
        backend.close()


def test_the_ddl_applies_twice_on_chdb(chdb_store: ChdbBackend) -> None:
    assert migrate(chdb_store, RETENTION) == [m.version for m in discover()]
    assert migrate(chdb_store, RETENTION) == []
    tables = {name for (name,) in chdb_store.query(
        "SELECT name FROM system.tables WHERE database = 'lt_unit_migrations'").rows}  # fmt: skip
    assert set(TABLES) | {"exchange_daily", "exchange_daily_mv", "schema_migrations"} <= tables


KIND_TYPES = {
    Kind.STRING: ("String", "LowCardinality(String)"),
    Kind.BYTES: ("String",),
    Kind.UINT8: ("UInt8",),
    Kind.UINT16: ("UInt16",),
    Kind.UINT32: ("UInt32",),
    Kind.UINT64: ("UInt64",),
    Kind.FLOAT64_OR_NULL: ("Nullable(Float64)",),
    Kind.DATE: ("Date",),
    Kind.TIMESTAMP: ("DateTime64(3, 'UTC')",),
    Kind.TIMESTAMP_OR_NULL: ("Nullable(DateTime64(3, 'UTC'))",),
    Kind.STRINGS: ("Array(String)",),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_sink_columns_match_the_ddl(chdb_store: ChdbBackend, name: str) -> None:
    migrate(chdb_store, RETENTION)
    where = f"database = 'lt_unit_migrations' AND table = '{name}'"
    ddl = dict(chdb_store.query(f"SELECT name, type FROM system.columns WHERE {where}").rows)
    columns = TABLES[name].columns
    assert [c.name for c in columns if c.name in ddl] == [c.name for c in columns], "inserted columns exist"
    assert set(ddl) == {c.name for c in columns}, "every column is filled by the sink"
    for column in columns:
        assert ddl[column.name] in KIND_TYPES[column.kind], column
    sql = TABLES[name].sql
    assert sql is None or len(sql) == len(columns)
