"""The small templating of the DDL files: `{{name arg…}}` placeholders for the clauses that differ.

Placeholders (arguments are separated by spaces and contain none):

* `{{db}}`: the database name;
* `{{lc}}`: `LowCardinality(String)`, or `String` where LowCardinality is experimental;
* `{{ts}}`: `DateTime64(3, 'UTC')`, or `DateTime('UTC')` (whole seconds) on old servers;
* `{{codec X}}`: `CODEC(X)`, or nothing;
* `{{ttl EXPR CLASS}}`: `TTL EXPR + toIntervalDay(days of CLASS + 1)`, or nothing (retention then
  drops partitions, see `pipeline.store.retention`); EXPR is a date, so the extra day keeps a row
  of day D at least the configured days after any moment of D;
* `{{settings}}`: MergeTree settings that exist only on current servers (the deduplication window
  that makes insert tokens work on non-replicated tables, dropping whole expired parts), or nothing.

An unknown placeholder or a wrong argument count raises MigrationError, so a typo cannot ship.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.store.capabilities import Capabilities
from pipeline.store.errors import MigrationError
from pipeline.store.policy import Retention

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)((?:\s+[^\s{}]+)*)\s*\}\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEDUP_WINDOW = 1000  # inserts remembered per table for insert_deduplication_token


@dataclass(frozen=True, slots=True)
class Dialect:
    """Everything a rendering depends on: the database, the server's capabilities, retention."""

    database: str
    capabilities: Capabilities
    retention: Retention

    def __post_init__(self) -> None:
        if not IDENTIFIER.match(self.database):
            raise MigrationError(f"database name {self.database!r} is not a plain identifier")

    def clauses(self) -> dict[str, Callable[..., str]]:
        caps = self.capabilities
        settings = ", ".join(
            [f"non_replicated_deduplication_window = {DEDUP_WINDOW}"] * caps.dedup_token
            + ["ttl_only_drop_parts = 1"] * caps.ttl
        )
        return {
            "db": lambda: self.database,
            "lc": lambda: "LowCardinality(String)" if caps.low_cardinality else "String",
            "ts": lambda: "DateTime64(3, 'UTC')" if caps.datetime64 else "DateTime('UTC')",
            "codec": lambda spec: f"CODEC({spec})" if caps.codecs else "",
            "ttl": lambda expr, cls: (
                f"TTL {expr} + toIntervalDay({self.retention.days(cls) + 1})" if caps.ttl else ""
            ),
            "settings": lambda: f"SETTINGS {settings}" if settings else "",
        }


def render(text: str, dialect: Dialect) -> str:
    """Replace every placeholder of `text` for `dialect`."""
    clauses = dialect.clauses()

    def replace(match: re.Match[str]) -> str:
        name, args = match[1], match[2].split()
        clause = clauses.get(name)
        if clause is None:
            raise MigrationError(f"unknown placeholder {{{{{name}}}}}")
        try:
            return clause(*args)
        except TypeError:
            raise MigrationError(f"placeholder {{{{{name}}}}} takes other arguments than {args}") from None

    return PLACEHOLDER.sub(replace, text)
