"""Retention enforcement (`lookthrough store retention`): drop partitions past their period.

Each table is partitioned by day, month or year of its retention date (see `migrations/`), so a
partition whose last day is older than `today - days` can go as a whole, which is cheap and
exact. On servers with TTL the tables also carry a TTL clause rendered from the settings, which
removes expired rows on merges; this command then also re-applies the TTL when the configured
period changed (`ALTER TABLE … MODIFY TTL`). On 18.16 (no TTL) it is the only mechanism: run it
daily (cron, systemd timer). Partitions are only ever dropped when entirely expired, so data is
kept at least as long as configured, never shorter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.store.backend import Backend
from pipeline.store.policy import Retention
from pipeline.store.sqltext import literal
from pipeline.store.template import Dialect, render


@dataclass(frozen=True, slots=True)
class Rule:
    table: str
    granularity: str  # day | month | year: how the table's partition IDs are formed
    retention: str  # class in Retention
    ttl: str  # the TTL placeholder of its DDL, re-rendered when the period changes


RULES = (
    Rule("reports", "month", "records", "{{ttl trading_day records}}"),
    Rule("exchange_daily", "month", "records", "{{ttl trading_day records}}"),
    Rule("exchange_devices", "month", "records", "{{ttl trading_day records}}"),
    Rule("dlq", "month", "records", "{{ttl day records}}"),
    Rule("deliveries", "day", "deliveries", "{{ttl toDate(delivered_at) deliveries}}"),
    Rule("subscribers", "year", "subscribers", "{{ttl toDate(updated_at) subscribers}}"),
)


@dataclass(frozen=True, slots=True)
class Action:
    table: str
    what: str  # "drop partition 202401" | "modify ttl …"


def last_day(partition: str, granularity: str) -> dt.date:
    """The last calendar day a partition ID (20251120, 202511, 2025) covers."""
    if granularity == "day":
        return dt.date(int(partition[:4]), int(partition[4:6]), int(partition[6:8]))
    if granularity == "month":
        first = dt.date(int(partition[:4]), int(partition[4:6]), 1)
        return (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return dt.date(int(partition[:4]), 12, 31)


def plan(backend: Backend, retention: Retention, today: dt.date) -> list[Action]:
    """What `enforce` would do today, without doing it."""
    db = backend.database
    actions: list[Action] = []
    dialect = Dialect(db, backend.capabilities, retention)
    for rule in RULES:
        cutoff = today - dt.timedelta(days=retention.days(rule.retention))
        partitions = backend.query(
            f"SELECT DISTINCT partition FROM system.parts WHERE database = {literal(db)} "
            f"AND table = {literal(rule.table)} AND active ORDER BY partition"
        )
        for (partition,) in partitions.rows:
            text = str(partition).strip("'")
            if text.isdigit() and last_day(text, rule.granularity) < cutoff:
                actions.append(Action(rule.table, f"DROP PARTITION {text}"))
        if backend.capabilities.ttl:
            clause = render(rule.ttl, dialect)
            current = backend.query(
                f"SELECT create_table_query FROM system.tables WHERE database = {literal(db)} "
                f"AND name = {literal(rule.table)}"
            ).scalar()
            if current is not None and clause not in str(current):
                actions.append(Action(rule.table, f"MODIFY {clause}"))
    return actions


def enforce(backend: Backend, retention: Retention, today: dt.date) -> list[Action]:
    """Apply `plan`; return what was done."""
    actions = plan(backend, retention, today)
    for action in actions:
        backend.execute(f"ALTER TABLE {backend.database}.{action.table} {action.what}")
    return actions
