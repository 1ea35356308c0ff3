"""The device-sharing changelog table: material changes only, confirmed after commit, merge is order-free;
a device's sharing keys (one per unique identifier) through the changelog from one worker to another."""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineSettings, Settings
from pipeline.process import Processor
from pipeline.refdata import ReferenceData
from pipeline.sharing import SharingTable, merge

from .conftest import LOGIN_MS
from .sharing_support import BIOS_BIT, windows_login


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
