"""Versioned, idempotent schema migrations: `migrations/NNN_name.sql`, applied in order, once.

Each file holds `;`-terminated statements with the placeholders of `pipeline.store.template`,
rendered for the connected server. Applied versions are recorded in `<db>.schema_migrations`
with the checksum of the file as written (before rendering); a recorded file that has changed
since is a MigrationError, never silently re-applied. Statements must be idempotent (`IF NOT
EXISTS`), so a migration interrupted halfway, or two sinks starting at once, is simply run again.
The tests apply these same files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.store.backend import Backend, Column, Kind
from pipeline.store.errors import MigrationError
from pipeline.store.policy import Retention
from pipeline.store.template import Dialect, render

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LEDGER = (Column("version", Kind.UINT32), Column("name", Kind.STRING), Column("checksum", Kind.STRING),
           Column("applied_at", Kind.TIMESTAMP))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def statements(self, dialect: Dialect) -> list[str]:
        """The rendered statements, comments dropped, in file order."""
        lines = [line for line in render(self.text, dialect).splitlines() if not line.lstrip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, by version; MigrationError on a stray file, a gap or a duplicate."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNN_lower_case_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3… without gaps: {[m.version for m in found]}")
    return found


def applied(backend: Backend) -> dict[int, str]:
    """Recorded versions → checksum (empty before the first migration)."""
    db = backend.database
    result = backend.query(f"SELECT version, any(checksum) AS checksum FROM {db}.schema_migrations GROUP BY version")
    return {int(version): str(checksum) for version, checksum in result.rows}


def migrate(backend: Backend, retention: Retention, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations; return their versions (empty when up to date)."""
    dialect = Dialect(backend.database, backend.capabilities, retention)
    db = backend.database
    backend.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    # ReplacingMergeTree: two processes migrating at once may both record a version.
    backend.execute(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, checksum String, "
        f"applied_at {render('{{ts}}', dialect)}) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = applied(backend)
    newly: list[int] = []
    for migration in migrations if migrations is not None else discover():
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:03d}_{migration.name} changed after it was applied "
                    f"(recorded {recorded}, file {migration.checksum}); add a new migration instead"
                )
            continue
        for statement in migration.statements(dialect):
            backend.execute(statement)
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        backend.insert("schema_migrations", _LEDGER,
                       [[migration.version], [migration.name], [migration.checksum], [now_ms]], None)  # fmt: skip
        newly.append(migration.version)
    return newly
