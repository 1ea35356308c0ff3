"""Idle device-sharing keys are tombstoned on the real changelog topic by a real worker.

A worker runs with a 160 s sharing window and no grace over generated reports whose logins are one
second apart (25 minutes in all), fed at 200 a second so that it processes them about in login
order across the ingress partitions, as it would live. What the test expects follows from the records the worker wrote
and the table's documented contract, not from running the table: a key whose newest sighting is
more than the window behind the newest sighting seen is idle and tombstoned within a sixteenth of
the window; a key seen within the window is never tombstoned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import localrun, readback
from pipeline.commands.generate import generate_market

from .pipeline_support import drain, load_reference, load_truth, namespace, onboard_reporters

WINDOW_S = 160
STEP_MS = WINDOW_S * 1000 // 16  # the expiry lag the contract allows, and the changelog's time resolution


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("expiry-market")
    summary = generate_market(out, reports=1500, seed=5, defect_rate=0.0, suites=("x25519",))
    return out, summary


def last_records(records: list[tuple[bytes | None, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    """Each key's last record (None: a tombstone), as compaction will keep it, and the newest
    sighting any of its states carried. One key is in one partition, so its records are in order."""
    last: dict[str, Any] = {}
    newest: dict[str, int] = {}
    for key, value in records:
        assert key is not None
        name = key.decode()
        state = None if value is None else json.loads(value)
        last[name] = state
        if state:
            newest[name] = max(newest.get(name, 0), *state.values())
    return last, newest


def test_a_worker_tombstones_idle_keys_on_the_changelog(
    kafka_bootstrap: str, market: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    market_dir, summary = market
    truth = load_truth(market_dir)
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        load_reference(ns.settings, market_dir)
        admin = onboard_reporters(ns, truth)
        ns.start_worker("expiry", {"LT_PIPELINE_SHARING_WINDOW_SECONDS": str(WINDOW_S),
                                   "LT_PIPELINE_SHARING_EXPIRY_GRACE_SECONDS": "0"})  # fmt: skip
        # Fed once the worker has its partitions, as live: a worker takes seconds to start, and
        # processing their backlog in a few transactions would write fewer states (a key seen and
        # gone idle within one transaction gets its tombstone only).
        localrun.wait_group_stable(admin, ns.settings.kafka.group, 1)
        localrun.feed(ns.settings, market_dir / "ingress.jsonl", rate=200.0)
        drain(ns, truth, timeout=120)
        assert ns.stop_workers() == [0], ns.worker_logs()[-2000:]
        topic = ns.settings.topics.sharing_state
        records = readback.read_all(ns.settings.kafka.client_config(), [topic], decode=False)[topic]

    last, newest = last_records(records)
    horizon = max(newest.values())
    # A written sighting is at most STEP_MS older than the table's (a smaller move is not written),
    # so the table's horizon is in [horizon, horizon + STEP_MS] and a key's newest sighting in
    # [newest, newest + STEP_MS]; the bounds below hold whatever they are within those ranges.
    idle = {key for key, t in newest.items() if t + STEP_MS + STEP_MS + WINDOW_S * 1000 <= horizon}
    live = {key for key, t in newest.items() if t >= horizon + STEP_MS - WINDOW_S * 1000}
    assert len(idle) >= 300 and len(live) >= 100, (len(idle), len(live), len(newest))
    not_tombstoned = sorted(key for key in idle if last[key] is not None)
    assert not_tombstoned == [], f"{len(not_tombstoned)} idle keys still on the changelog"
    tombstoned_live = sorted(key for key in live if last[key] is None)
    assert tombstoned_live == [], f"{len(tombstoned_live)} live keys tombstoned"
    assert sum(value is None for _, value in records) >= len(idle)
