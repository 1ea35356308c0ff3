"""Retention policy: how long each class of table keeps its data (profile §6, seed 001 art. 26–27).

Three classes: `records` (terminal records, dead letters and the exchanges' daily aggregates,
20 years by default), `deliveries` (which report went to which exchange; at least 30 days, a floor
this module enforces) and `subscribers` (20 years). Days come from `ClickHouseSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import ClickHouseSettings
from pipeline.store.errors import StoreError

DELIVERIES_FLOOR_DAYS = 30


@dataclass(frozen=True, slots=True)
class Retention:
    records: int
    deliveries: int
    subscribers: int

    @classmethod
    def from_settings(cls, settings: ClickHouseSettings) -> Retention:
        """StoreError if a period is not positive or deliveries would keep less than 30 days."""
        policy = cls(settings.records_retention_days, settings.deliveries_retention_days,
                     settings.subscribers_retention_days)  # fmt: skip
        if min(policy.records, policy.deliveries, policy.subscribers) <= 0:
            raise StoreError("retention periods must be positive numbers of days")
        if policy.deliveries < DELIVERIES_FLOOR_DAYS:
            raise StoreError(f"delivery records must be kept at least {DELIVERIES_FLOOR_DAYS} days")
        return policy

    def days(self, name: str) -> int:
        """Days for a class name used in the DDL templates; StoreError for an unknown class."""
        if name not in ("records", "deliveries", "subscribers"):
            raise StoreError(f"unknown retention class {name!r}")
        value: int = getattr(self, name)
        return value
