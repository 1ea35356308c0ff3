"""Retention on the Debian server (18.16, no TTL): `store retention` drops whole expired partitions
of every table, keeps the rest, and a second run finds nothing to do."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from pipeline.store.backend import Backend
from pipeline.store.policy import Retention
from pipeline.store.retention import enforce, plan
from pipeline.store.tables import DELIVERY_COLUMNS, DLQ_COLUMNS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp() * 1000)


def test_retention_drops_expired_partitions_on_the_server(server_store: Backend) -> None:
    if server_store.capabilities.ttl:
        pytest.fail(f"expected the Debian server without TTL, got {server_store.capabilities.version}")
    today = dt.date(2026, 3, 15)
    days = [dt.date(2026, 3, 15), dt.date(2026, 2, 13), dt.date(2026, 2, 12), dt.date(2025, 12, 31)]
    deliveries = [(ms(d), "SHFE", "0101", "0101", f"r{i}", "FUTURES_COMPANY", "C", d, "", "CTP", 1, "A", "",
                   "WINDOWS", "D", "1.2.3.4", [], "lt", "t") for i, d in enumerate(days)]  # fmt: skip
    server_store.insert("deliveries", DELIVERY_COLUMNS, [list(c) for c in zip(*deliveries, strict=True)], None)
    dead = [(d, "0101", "0101", "lt.ingress.0101", 0, i, "", "decode", "E101", "m", ms(d), "lt", b"", b"x")
            for i, d in enumerate([dt.date(2006, 1, 5), dt.date(2006, 4, 1), dt.date(2026, 3, 1)])]  # fmt: skip
    server_store.insert("dlq", DLQ_COLUMNS, [list(c) for c in zip(*dead, strict=True)], None)
    db = server_store.database
    server_store.execute(f"INSERT INTO {db}.exchange_devices SELECT 'SHFE', toDate('2006-01-05'), '0101', "
                         f"'FUTURES_COMPANY', 'D0', 'WINDOWS'")  # fmt: skip
    policy = Retention(records=7305, deliveries=30, subscribers=7305)  # 20 years back from 2026-03-15: 2006-03-20

    actions = enforce(server_store, policy, today)

    assert sorted((a.table, a.what) for a in actions) == [
        ("deliveries", "DROP PARTITION 20251231"),
        ("deliveries", "DROP PARTITION 20260212"),  # 31 days old; 2026-02-13 is exactly 30 and stays
        ("dlq", "DROP PARTITION 200601"),
        ("exchange_devices", "DROP PARTITION 200601"),
    ]
    assert sorted(d for (d,) in server_store.query(f"SELECT trading_day FROM {db}.deliveries").rows) == [
        dt.date(2026, 2, 13), dt.date(2026, 3, 15)]  # fmt: skip
    assert sorted(d for (d,) in server_store.query(f"SELECT day FROM {db}.dlq").rows) == [
        dt.date(2006, 4, 1), dt.date(2026, 3, 1)]  # fmt: skip
    # The periodic reports' device sightings outlive the deliveries they came from.
    assert sorted(d for (d,) in server_store.query(f"SELECT trading_day FROM {db}.exchange_devices").rows) == days[::-1]
    assert plan(server_store, policy, today) == []
    assert plan(server_store, dataclasses.replace(policy, deliveries=400), today) == []
