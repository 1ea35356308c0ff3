"""DDL templating: the two dialects, the retention policy, capability detection."""

from __future__ import annotations

import re

import pytest

from pipeline.config import ClickHouseSettings
from pipeline.store.capabilities import Capabilities
from pipeline.store.errors import MigrationError, StoreError
from pipeline.store.migrations import discover
from pipeline.store.policy import Retention
from pipeline.store.template import Dialect, render

LEGACY = Capabilities.from_version("18.16.1")
CURRENT = Capabilities.from_version("26.9.2.1")
RETENTION = Retention(records=7305, deliveries=30, subscribers=7305)


@pytest.mark.parametrize(
    ("version", "ttl", "datetime64", "dedup_token"),
    [("18.16.1", False, False, False), ("19.8.3.8", True, False, False), ("21.8.10", True, True, False),
     ("22.3.2.1", True, True, True), ("26.9.2.1", True, True, True)],
)  # fmt: skip
def test_capabilities_follow_the_version(version: str, ttl: bool, datetime64: bool, dedup_token: bool) -> None:
    caps = Capabilities.from_version(version)
    assert (caps.ttl, caps.datetime64, caps.dedup_token) == (ttl, datetime64, dedup_token)
    assert caps.low_cardinality == caps.codecs == datetime64


def test_capabilities_reject_nonsense() -> None:
    with pytest.raises(StoreError):
        Capabilities.from_version("unknown")


def test_legacy_rendering_uses_only_what_18_16_has() -> None:
    dialect = Dialect("lt_db", LEGACY, RETENTION)
    for migration in discover():
        text = "\n".join(migration.statements(dialect))
        assert "{{" not in text and "}}" not in text
        for token in ("TTL", "DateTime64", "LowCardinality", "CODEC", "SETTINGS", "Map("):
            assert token not in text, (migration.name, token)
        assert "lt_db." in text


def test_current_rendering_has_ttl_from_the_settings() -> None:
    dialect = Dialect("lt_db", CURRENT, Retention(records=100, deliveries=45, subscribers=200))
    text = {m.name: "\n".join(m.statements(dialect)) for m in discover()}
    # One day more than configured: the expression is a date, rows of that day live the full period.
    assert "TTL toDate(delivered_at) + toIntervalDay(46)" in text["deliveries"]
    assert "TTL trading_day + toIntervalDay(101)" in text["reports"]
    assert "TTL toDate(updated_at) + toIntervalDay(201)" in text["subscribers"]
    assert "DateTime64(3, 'UTC')" in text["reports"] and "LowCardinality(String)" in text["reports"]
    assert "non_replicated_deduplication_window" in text["reports"]


def test_unknown_placeholders_and_wrong_arguments_fail() -> None:
    dialect = Dialect("lt_db", CURRENT, RETENTION)
    with pytest.raises(MigrationError, match="unknown placeholder"):
        render("CREATE TABLE {{db}}.t (x {{typo}})", dialect)
    with pytest.raises(MigrationError, match="other arguments"):
        render("{{ttl day}}", dialect)
    with pytest.raises(StoreError, match="retention class"):
        render("{{ttl day forever}}", dialect)


def test_database_names_are_identifiers() -> None:
    with pytest.raises(MigrationError):
        Dialect("lt; DROP DATABASE x", CURRENT, RETENTION)


def test_retention_floors_and_defaults() -> None:
    defaults = Retention.from_settings(ClickHouseSettings())
    assert defaults.deliveries >= 30 and defaults.records >= 20 * 365 and defaults.subscribers >= 20 * 365
    with pytest.raises(StoreError, match="at least 30 days"):
        Retention.from_settings(ClickHouseSettings(deliveries_retention_days=29))
    with pytest.raises(StoreError, match="positive"):
        Retention.from_settings(ClickHouseSettings(records_retention_days=0))


def test_every_migration_statement_is_idempotent() -> None:
    """CREATE … IF NOT EXISTS, or a backfill INSERT … SELECT into a ReplacingMergeTree table made
    before it (run again, it adds only rows that collapse into the ones already there)."""
    dialect = Dialect("lt_db", CURRENT, RETENTION)
    replacing: set[str] = set()
    for migration in discover():
        for statement in migration.statements(dialect):
            backfill = re.match(r"INSERT INTO (\S+) \(", statement)
            if backfill:
                assert backfill[1] in replacing, statement[:80]
                continue
            assert re.match(r"CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS ", statement), statement[:80]
            table = re.match(r"CREATE TABLE IF NOT EXISTS (\S+)", statement)
            if table and "ENGINE = ReplacingMergeTree" in statement:
                replacing.add(table[1])
