"""The device-sharing changelog table: material changes only, confirmed after commit, merge is order-free;
a device's sharing keys (one per unique identifier) through the changelog from one worker to another."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import PipelineSettings, Settings
from pipeline.crypto.keyring import Keyring
from pipeline.generate import KeySet, PlanConfig, Truth, plan_reports
from pipeline.market import Market, MarketConfig, build_market
from pipeline.process import Processor
from pipeline.profile import limits
from pipeline.refdata import ReferenceData
from pipeline.sharing import EXPIRE_PER_DRAIN, SharingTable, merge

from .conftest import LOGIN_MS
from .sharing_support import BIOS_BIT, drained, windows_login


def test_only_material_changes_are_written_and_only_after_commit() -> None:
    table = SharingTable(resolution_ms=1000)
    table["dev"] = {"a": 0}
    assert [json.loads(v) for _, v in table.drain_changes()] == [{"a": 0}]
    table.confirm_changes()

    table["dev"] = {"a": 500}  # same investor, within the resolution: nothing to write
    assert table.drain_changes() == []
    table["dev"] = {"a": 1500}  # moved by more than the resolution
    assert [json.loads(v) for _, v in table.drain_changes()] == [{"a": 1500}]
    table.discard_changes()  # the transaction aborted: the write is still owed
    table["dev"] = {"a": 1500}
    assert [json.loads(v) for _, v in table.drain_changes()] == [{"a": 1500}]
    table.confirm_changes()

    table["dev"] = {"a": 1500, "b": 1600}  # a new investor is always material
    assert [json.loads(v) for _, v in table.drain_changes()] == [{"a": 1500, "b": 1600}]


def test_merge_keeps_the_latest_sighting_whatever_the_order() -> None:
    left, right = {"a": 5, "b": 1}, {"a": 3, "c": 9}
    one, two = dict(left), dict(right)
    merge(one, right)
    merge(two, left)
    assert one == two == {"a": 5, "b": 1, "c": 9}
    table = SharingTable()
    table.merge_remote("dev", json.dumps(right).encode())
    table.merge_remote("dev", json.dumps(left).encode())
    assert table["dev"] == {"a": 5, "b": 1, "c": 9}
    assert table.drain_changes() == []  # remote state is already on the changelog


def test_get_reads_the_state_without_marking_a_change() -> None:
    table = SharingTable()
    assert table.get("dev") is None and table.get("dev", {}) == {}
    table.merge_remote("dev", b'{"a":1}')
    assert table.get("dev") == {"a": 1} and table.drain_changes() == []


def test_a_devices_keys_go_through_the_changelog_to_another_worker(kit: Any) -> None:
    # One Windows machine (disk serial D, BIOS serial B) seen by two workers, max 2 investors a day.
    # Investor names and login times below follow from the kit's investors and `login_text`.
    settings = Settings(pipeline=PipelineSettings(fingerprint_key=b"changelog-test-key", sharing_max_investors=2,
                                                  sharing_window_seconds=86_400))  # fmt: skip
    ref = ReferenceData.from_mapping(kit.market.reference_data())
    table_a, table_b = SharingTable(), SharingTable()
    worker_a = Processor(settings, kit.keyring, ref, table_a)
    worker_b = Processor(settings, kit.keyring, ref, table_b)
    name = [f"{inv.broker_id}:{inv.investor_id}" for inv in [kit.investor, *kit.other_investors]]
    at = [LOGIN_MS + i * 60_000 + 10_000 for i in range(4)]

    windows_login(kit, worker_a, 0, 0, {})  # investor 0: D and B
    windows_login(kit, worker_a, 1, 1, {"bios_serial": ""}, BIOS_BIT)  # investor 1: D only
    changelog = table_a.drain_changes()
    table_a.confirm_changes()
    written = sorted((json.loads(v) for _, v in changelog), key=len)
    assert written == [{name[0]: at[0]}, {name[0]: at[0], name[1]: at[1]}]  # key B, key D
    windows_login(kit, worker_a, 2, 0, {})  # investor 0 again a minute later: nothing material
    assert table_a.drain_changes() == []

    for key, value in changelog:  # worker B follows the changelog topic
        table_b.merge_remote(key, value)
    # On worker B, investor 2 is the third investor of the machine: W409 at once.
    assert "W409" in windows_login(kit, worker_b, 3, 2, {}).warnings
    written_b = sorted((json.loads(v) for _, v in table_b.drain_changes()), key=len)
    assert written_b == [{name[0]: at[0], name[2]: at[3]}, {name[0]: at[0], name[1]: at[1], name[2]: at[3]}]


# --- expiry of idle keys ------------------------------------------------------------------------
# A window of 16 s and a grace of 2 s: a key is idle once its newest sighting is more than 18 s
# behind the newest sighting the table has seen, and the contract allows expiry to lag by a
# sixteenth of the window (1 s) at most. Sightings are plain milliseconds from 0.
WINDOW, GRACE = 16_000, 2_000
LATE = WINDOW // 16  # how long after becoming idle a key may still be held


def expiring_table(**kwargs: Any) -> SharingTable:
    return SharingTable(window_ms=WINDOW, grace_ms=GRACE, **kwargs)


def test_idle_keys_are_tombstoned_and_live_keys_stay() -> None:
    table = expiring_table()
    table["old"] = {"a": 10_000}
    table["edge"] = {"b": 5_000, "c": 22_000}  # its newest sighting decides
    table["recent"] = {"d": 28_000}  # 28 000 - 18 000 = 10 000: nothing is idle yet
    assert drained(table) == {"old": {"a": 10_000}, "edge": {"b": 5_000, "c": 22_000}, "recent": {"d": 28_000}}

    table["now"] = {"e": 40_000}  # 40 000 - 18 000 = 22 000: "old" is idle, "edge" (22 000) is not
    assert drained(table) == {"old": None, "now": {"e": 40_000}}
    assert sorted(table) == ["edge", "now", "recent"]

    table["now"] = {"e": 40_001}  # "edge" has been idle for 1 ms: within the allowed lag, it may stay
    drained(table)
    assert "recent" in table and "now" in table
    table["now"] = {"e": 40_000 + LATE}
    assert drained(table)["edge"] is None
    assert sorted(table) == ["now", "recent"]
    assert drained(table) == {}  # nothing is tombstoned twice


def tombstone_in_flight(key: str) -> SharingTable:
    """A table whose transaction in progress tombstones `key`: seen at 1 000 and committed, then
    idle once a sighting at 30 000 was drained with it."""
    table = expiring_table()
    table[key] = {"a": 1_000}
    drained(table)
    table["now"] = {"b": 30_000}
    assert table.drain_changes() == [(key, None), ("now", b'{"b":30000}')]
    return table


def test_a_tombstoned_key_stays_in_memory_until_the_commit() -> None:
    table = tombstone_in_flight("old")
    assert table["old"] == {"a": 1_000}  # the transaction has not committed yet
    table.confirm_changes()
    assert sorted(table) == ["now"]


def test_an_aborted_tombstone_is_drained_again() -> None:
    table = tombstone_in_flight("old")
    table.discard_changes()  # aborted: the changelog still holds "old", so must the table
    assert table["old"] == {"a": 1_000}
    table["now"] = {"b": 30_000}  # the rewound batch, processed again
    assert drained(table) == {"old": None, "now": {"b": 30_000}}
    assert sorted(table) == ["now"]


def test_sightings_kept_after_an_abort_count_for_expiry() -> None:
    table = expiring_table()
    table["dev"] = {"a": 1_000}
    drained(table)
    table["other"] = {"b": 2_000}
    table.drain_changes()  # a transaction in flight...
    table["dev"] = {"a": 1_000, "c": 20_000}  # ...while the next batch is processed
    table.discard_changes()  # the commit failed: both batches are rewound, the state keeps their sightings
    table["now"] = {"d": 30_000}  # idle before 12 000: "dev", seen at 20 000, is live
    assert drained(table) == {"other": None, "now": {"d": 30_000}}
    assert sorted(table) == ["dev", "now"]


def test_a_key_seen_again_before_its_tombstone_commits_is_written_after_it() -> None:
    table = tombstone_in_flight("dev")
    table["dev"] = {"a": 1_000, "c": 30_500}  # the next batch, processed while that commit is in flight
    table.confirm_changes()
    assert table["dev"] == {"a": 1_000, "c": 30_500}
    # The changelog's last record of "dev" is the tombstone: the whole state is written after it.
    assert drained(table) == {"dev": {"a": 1_000, "c": 30_500}}


def test_a_late_login_on_an_idle_key_writes_only_its_tombstone() -> None:
    table = expiring_table()
    table["now"] = {"b": 30_000}
    drained(table)
    table["late"] = {"a": 1_000}  # a login more than a window and grace behind the newest data
    assert drained(table) == {"late": None}  # its state would outlive it on the changelog
    assert sorted(table) == ["now"]


def test_at_most_expire_max_tombstones_per_transaction() -> None:
    table = expiring_table(expire_max=2)
    for i in range(5):
        table[f"old{i}"] = {"a": 1_000 + i}
    drained(table)
    table["now"] = {"b": 30_000}
    counts = []
    for _ in range(4):
        counts.append(sum(value is None for value in drained(table).values()))
    assert counts == [2, 2, 1, 0]
    assert sorted(table) == ["now"]


def test_expiry_follows_event_time_and_ignores_sightings_far_ahead_of_the_clock() -> None:
    # Replayed data from 2020 on a clock of 2026: the data's own horizon decides, nothing is idle.
    clock_ms = 1_790_000_000_000
    table = expiring_table(clock=lambda: clock_ms / 1000)
    t2020 = 1_580_000_000_000
    table["a"] = {"x": t2020}
    table["b"] = {"y": t2020 + 15_000}
    drained(table)
    assert sorted(table) == ["a", "b"]

    # A terminal clock set to a wrong year must not make every other key idle.
    table["bogus"] = {"z": clock_ms + 86_400_000 * 365}
    drained(table)
    assert sorted(table) == ["a", "b", "bogus"]
    # A sighting a few minutes ahead of the clock still counts: "a" and "b" are idle by it.
    table["fast"] = {"w": clock_ms + 120_000}
    drained(table)
    assert sorted(table) == ["bogus", "fast"]


def test_a_table_without_a_window_never_expires() -> None:
    table = SharingTable()
    table["old"] = {"a": 0}
    table["new"] = {"b": 10**12}
    assert drained(table) == {"old": {"a": 0}, "new": {"b": 10**12}}
    assert sorted(table) == ["new", "old"]


# --- tombstones from other workers ----------------------------------------------------------------


def test_a_remote_tombstone_deletes_an_idle_key_but_not_a_live_one() -> None:
    table = expiring_table()
    table.merge_remote("idle", b'{"a":1000}')
    table.merge_remote("published", b'{"b":25000}')
    table["mine"] = {"c": 2_000, "d": 29_000}  # a fresh local sighting, not drained yet
    table.merge_remote("now", b'{"e":30000}')  # horizon 30 000: idle before 12 000
    for key in ("idle", "published", "mine", "absent"):
        table.merge_remote(key, None)
    assert sorted(table) == ["mine", "now", "published"]
    assert table["mine"] == {"c": 2_000, "d": 29_000} and table["published"] == {"b": 25_000}
    # The tombstone took both live keys off the changelog: they are written again in full.
    assert drained(table) == {"mine": {"c": 2_000, "d": 29_000}, "published": {"b": 25_000}}

    table.merge_remote("idle", None)  # idempotent: again, nothing changes
    table.merge_remote("mine", b'{"c":2000,"d":29000}')  # our own write, read back
    assert sorted(table) == ["mine", "now", "published"] and drained(table) == {}


def test_a_remote_tombstone_during_our_write_of_a_live_key_makes_us_write_it_again() -> None:
    table = expiring_table()
    table["dev"] = {"a": 25_000}
    assert table.drain_changes() == [("dev", b'{"a":25000}')]  # our transaction in flight
    table.merge_remote("now", b'{"b":30000}')
    table.merge_remote("dev", None)  # committed first: our write may come before it on the topic
    table.confirm_changes()
    assert drained(table) == {"dev": {"a": 25_000}}


def test_remote_states_and_tombstones_merge_in_any_order() -> None:
    # "idle" is idle once "now" is merged (1 000 < 30 000 - 18 000), "live" never is.
    records = [("idle", b'{"a":1000}'), ("idle", None), ("live", b'{"b":25000}'), ("live", None),
               ("now", b'{"c":30000}'), ("live", b'{"b":20000,"d":26000}')]  # fmt: skip
    results = set()
    for order in itertools.permutations(records):
        table = expiring_table()
        for key, value in order:
            table.merge_remote(key, value)
        drained(table)  # an idle key that a tombstone found live (or before its state) expires here
        results.add(json.dumps({key: table[key] for key in table}, sort_keys=True))
    assert [json.loads(r) for r in results] == [{"live": {"b": 25_000, "d": 26_000}, "now": {"c": 30_000}}]


# --- W409 over a generated market, with expiry running all the time ------------------------------

NOW_MS = 1_763_600_000_000 + 10 * 3_600_000


@pytest.fixture(scope="module")
def shared_market() -> Market:
    """The default market with 40 shared devices instead of 8 (2 to 5 investors each)."""
    return build_market(MarketConfig(shared_device_groups=40))


@pytest.mark.parametrize(("drain_every", "expire_max"), [(1, EXPIRE_PER_DRAIN), (7, 3)])
def test_w409_is_the_planted_sharing_in_order_while_keys_expire(
    shared_market: Market, market_keys: tuple[Path, KeySet], drain_every: int, expire_max: int
) -> None:
    # 3000 logins a minute apart: 50 hours, so keys go idle (a day after their newest sighting) all along.
    path, keys = market_keys
    window_ms = limits().device_sharing_window_seconds * 1000  # the generator's truth uses the profile's
    table = SharingTable(window_ms=window_ms, grace_ms=0, expire_max=expire_max)
    settings = Settings(pipeline=PipelineSettings(fingerprint_key=b"w409-expiry-fingerprint-key"))
    processor = Processor(settings, Keyring.load(path, "production"),
                          ReferenceData.from_mapping(shared_market.reference_data()), table)  # fmt: skip
    config = PlanConfig(reports=3000, defect_rate=0.004, missing_item_rate=0.3, seed=409)
    accepted: list[tuple[Truth, bool]] = []
    changelog: dict[str, dict[str, int] | None] = {}  # each key's last record, as compaction keeps it
    revived = 0  # keys written again after their tombstone: seen again more than a window later

    def drain() -> None:
        nonlocal revived
        for key, value in drained(table).items():
            if value is not None and key in changelog and changelog[key] is None:
                revived += 1
            changelog[key] = value

    for offset, report in enumerate(plan_reports(shared_market, keys, config, [i * 60 for i in range(3000)])):
        result = processor.process(report.topic, 0, offset, report.key, report.value, NOW_MS)
        assert result.code == report.truth.code, report.truth
        if result.code is None:
            accepted.append((report.truth, "W409" in result.warnings))
        if offset % drain_every == 0:
            drain()
    drain()
    wrong = [(t.report_id, t.w409_in_order, got) for t, got in accepted if got != t.w409_in_order]
    assert wrong == [], f"{len(wrong)} reports with W409 other than planted, first: {wrong[:5]}"
    assert sum(t.w409_in_order for t, _ in accepted) >= 100  # W409 is due often enough to mean something
    # Keys expired all along, and many came back: their logins were judged without the old sightings.
    expired = [key for key, value in changelog.items() if value is None]
    assert len(expired) >= 100 and revived >= 100, (len(expired), revived)
    # The changelog and the table agree on which keys are live.
    assert {key for key, value in changelog.items() if value is not None} == set(table)


def test_a_workers_table_takes_window_and_grace_from_the_settings() -> None:
    pipeline = Settings.from_env({"LT_PIPELINE_SHARING_WINDOW_SECONDS": "16",
                                  "LT_PIPELINE_SHARING_EXPIRY_GRACE_SECONDS": "2"}).pipeline  # fmt: skip
    table = SharingTable.from_settings(pipeline)
    table["old"] = {"a": 1_000}
    table["edge"] = {"b": 12_000}
    table["now"] = {"c": 30_000}  # idle before 30 000 - 16 000 - 2 000 = 12 000
    assert drained(table) == {"old": None, "edge": {"b": 12_000}, "now": {"c": 30_000}}
    assert Settings().pipeline.sharing_expiry_grace_seconds == 3_600
