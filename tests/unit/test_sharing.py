"""The device-sharing changelog table: material changes only, confirmed after commit, merge is order-free."""

from __future__ import annotations

import json

from pipeline.sharing import SharingTable, merge


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
