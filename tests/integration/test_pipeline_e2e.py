"""End to end on the real broker: a generated market through real worker processes.

Expected values come from the generator's truth.jsonl (what it planted), never from
running the stages in the test.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from pipeline import localrun, readback, refstore
from pipeline.commands.generate import generate_market
from pipeline.config import Settings

from ..processes import wait_gone
from .pipeline_support import (
    Namespace,
    Outputs,
    assert_exactly_once,
    assert_outputs_follow_ingress,
    drain,
    free_ports,
    load_reference,
    load_truth,
    namespace,
    onboard_reporters,
    read_outputs,
)

ALL_CODES = {
    "E101", "E102", "E103", "E104", "E105", "E201", "E202", "E203", "E204", "E205",
    "E301", "E302", "E303", "E304", "E401",
    "W402", "W403", "W404", "W405", "W406", "W407", "W408", "W409",
}  # fmt: skip


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("market")
    summary = generate_market(out, reports=20_000, seed=20190614, defect_rate=0.006, suites=("x25519", "rsa", "sm4"))
    return out, summary


def test_generated_market_matches_ground_truth(kafka_bootstrap: str, market: tuple[Path, dict[str, Any]],
                                               tmp_path: Path) -> None:  # fmt: skip
    market_dir, summary = market
    truth = load_truth(market_dir)
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        load_reference(ns.settings, market_dir)
        ns.start_worker("a")
        ns.start_worker("b")
        localrun.feed(ns.settings, market_dir / "ingress.jsonl")
        drain(ns, truth, timeout=300)
        assert ns.stop_workers() == [0, 0], ns.worker_logs()[-2000:]
        outputs = read_outputs(ns.settings)
        assert_outputs_follow_ingress(ns.settings)

    assert_exactly_once(outputs, truth)

    by_id = {t["report_id"]: t for t in truth}
    feedback = {f["report_id"]: f for f in outputs.feedback}
    seen_codes: set[str] = set()
    for t in truth:
        if t["outcome"] == "rejected":
            if t["code"] == "E101":
                continue  # not decodable: its feedback is named by position, checked below
            f = feedback[t["report_id"]]
            assert (f["status"], f["codes"]) == ("REJECTED", [t["code"]]), t["report_id"]
            seen_codes.add(t["code"])
        else:
            f = feedback[t["report_id"]]
            warnings = [c for c in f["codes"] if c != "W409"]
            assert warnings == t["warnings"], t["report_id"]
            assert f["status"] == ("WARNED" if f["codes"] else "ACCEPTED")
            if "W409" in f["codes"]:
                assert t["w409_possible"], f"W409 on a device the generator did not share: {t['report_id']}"
            seen_codes.update(f["codes"])
    e101 = [f for f in outputs.feedback if f["report_id"] not in by_id]
    assert len(e101) == sum(t["code"] == "E101" for t in truth)
    assert all(f["codes"] == ["E101"] for f in e101)
    seen_codes.add("E101")
    assert seen_codes >= ALL_CODES, f"codes never produced: {sorted(ALL_CODES - seen_codes)}"

    # Exchanges get their trading code, never the internal investor ID, plus provenance.
    for ex, records in outputs.exchange.items():
        for r in records:
            assert "investor_id" not in r and r["exchange"] == ex
            assert r["provenance"]["processing_system"] == "lookthrough"
            assert r["provenance"]["source"] == by_id[r["report_id"]]["reporter_id"]
            assert r["correction_of"] == by_id[r["report_id"]]["correction_of"]
    # A reporter's feedback goes to its own topic only.
    assert Counter(f["reporter_id"] for f in outputs.feedback) == Counter(t["reporter_id"] for t in truth)


# Small batches and short transactions: many in flight, so a kill lands mid-transaction; a
# transaction takes several consumed batches at the feed's pace, and a backlog after a restart ends
# transactions in the middle of consumed batches. A killed worker keeps its partitions until its
# session expires: the broker's minimum makes that seconds.
CRASH_ENV = {
    "LT_PIPELINE_BATCH_SIZE": "50",
    "LT_PIPELINE_COMMIT_INTERVAL_MS": "20",
    "LT_PIPELINE_SESSION_TIMEOUT_MS": "6000",
}


def start_feed(settings: Settings, ingress_jsonl: Path, rate: float) -> tuple[threading.Thread, list[int]]:
    """Feed `ingress_jsonl` at `rate` on a thread; the list gets the count fed, and stays empty if
    the feed failed (its exception stays in the thread)."""
    fed: list[int] = []
    feeder = threading.Thread(target=lambda: fed.append(localrun.feed(settings, ingress_jsonl, rate=rate)))
    feeder.start()
    return feeder, fed


def outputs_once_drained(ns: Namespace, truth: list[dict[str, Any]], feeder: threading.Thread,
                         fed: list[int]) -> Outputs:  # fmt: skip
    """After the feed has ended and fed everything, and every report has its feedback: the outputs."""
    feeder.join()
    assert fed, "the feed failed"
    drain(ns, truth)
    ns.stop_workers()
    return read_outputs(ns.settings)


def wait_for_feedback(settings: Settings, more_than: int, timeout: float = 120.0) -> int:
    """Until more than `more_than` reports have committed feedback; returns how many have."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = localrun.feedback_count(settings)
        if count > more_than:
            return count
        time.sleep(0.1)
    raise TimeoutError(f"no feedback beyond {more_than} reports within {timeout:.0f}s")


@pytest.fixture(scope="module")
def small_market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("small-market")
    summary = generate_market(out, reports=6_000, seed=7, defect_rate=0.004, suites=("x25519", "sm4", "rsa"))
    return out, summary


def test_sigkill_three_times_keeps_exactly_once(kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]],
                                                tmp_path: Path) -> None:  # fmt: skip
    """A worker killed three times while it commits transactions of a stream of reports: each kill
    comes a random moment after the worker's first committed results, so it lands in the middle of
    its work (a worker takes seconds to start; killed sooner, it would not have done any)."""
    market_dir, summary = small_market
    truth = load_truth(market_dir)
    rng = random.Random(1234)
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env.update(CRASH_ENV)
        load_reference(ns.settings, market_dir)
        worker = ns.start_worker("crash")
        feeder, fed = start_feed(ns.settings, market_dir / "ingress.jsonl", rate=200.0)  # 30 s: the kills come in it
        processed = 0  # reports with committed feedback before this worker started
        decrypting: list[int] = []  # the killed workers' decrypting processes (RSA, pipeline.ahead)
        for _ in range(3):
            wait_for_feedback(ns.settings, more_than=processed)  # this worker has committed results
            time.sleep(rng.uniform(0.0, 1.0))
            children = localrun.child_pids(worker.pid)
            worker.kill()  # SIGKILL: no cleanup, open transaction left behind
            worker.wait()
            assert wait_gone(children) == [], "a killed worker's decrypting processes outlived it"
            decrypting += children
            processed = localrun.feedback_count(ns.settings)
            worker = ns.start_worker("crash")
        assert processed < len(truth), "the last kill came before every report was processed"
        outputs = outputs_once_drained(ns, truth, feeder, fed)
    assert_exactly_once(outputs, truth)
    assert_investor_order(outputs, truth)
    assert decrypting, "no killed worker had started its decrypting processes (the market has RSA reports)"


def test_workers_restarting_at_random_keep_exactly_once(
    kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Three workers; every one to three seconds while 30 s of reports stream in, one of them is
    stopped (SIGTERM, or SIGKILL three times in ten) and started again. Each restart is two or three
    rebalances, which often come while a worker holds records it consumed under the assignment
    being revoked; every report still arrives exactly once and in per-investor order."""
    market_dir, summary = small_market
    truth = load_truth(market_dir)
    rng = random.Random(20190614)
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env.update(CRASH_ENV)
        load_reference(ns.settings, market_dir)
        admin = onboard_reporters(ns, truth)
        workers = {name: ns.start_worker(name) for name in ("a", "b", "c")}
        localrun.wait_group_stable(admin, ns.settings.kafka.group, 3)  # each has partitions to lose
        feeder, fed = start_feed(ns.settings, market_dir / "ingress.jsonl", rate=200.0)
        restarts = 0
        while feeder.is_alive():
            time.sleep(rng.uniform(1.0, 3.0))
            name = rng.choice(sorted(workers))
            if rng.random() < 0.3:
                workers[name].kill()
            else:
                workers[name].send_signal(signal.SIGTERM)
            workers[name].wait()
            workers[name] = ns.start_worker(name)
            restarts += 1
        assert restarts >= 5
        outputs = outputs_once_drained(ns, truth, feeder, fed)
    assert_exactly_once(outputs, truth)
    assert_investor_order(outputs, truth)


def test_an_output_refused_for_a_while_is_retried_exactly_once(
    kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """While lt.reports refuses every write (its `max.message.bytes` below any batch of reports),
    each transaction that writes it fails a delivery, is aborted, and its records are consumed
    again from the committed offsets, again and again as reports stream in, with growing pauses
    between; the worker stays up (it is the only one), and once the limit is lifted every report
    arrives exactly once."""
    market_dir, summary = small_market
    truth = load_truth(market_dir)[:2000]
    lines = (market_dir / "ingress.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "first.jsonl").write_text("".join(lines[:200]))
    (tmp_path / "refused.jsonl").write_text("".join(lines[200:2000]))
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env.update(CRASH_ENV)
        load_reference(ns.settings, market_dir)
        admin = AdminClient(ns.settings.kafka.client_config())
        ns.start_worker("refused")
        localrun.feed(ns.settings, tmp_path / "first.jsonl")
        localrun.wait_drained(ns.settings, 200, timeout=120)
        # Room for a transaction marker (about 80 bytes: the aborts must complete), none for a report.
        _set_max_message_bytes(admin, ns.settings.topics.reports, "300")
        feeder, fed = start_feed(ns.settings, tmp_path / "refused.jsonl", rate=600.0)
        time.sleep(1.5)  # half the feed, refused
        refused = localrun.feedback_count(ns.settings)
        _set_max_message_bytes(admin, ns.settings.topics.reports, None)
        outputs = outputs_once_drained(ns, truth, feeder, fed)
        aborts = ns.worker_logs().count('"aborting batch"')
        pauses = ns.worker_logs().count('"backing off after aborts"')
    assert refused < 300, "reports got through while lt.reports refused them"
    assert aborts >= 3, aborts
    assert 1 <= pauses < aborts, (pauses, aborts)  # a run of aborts backs off; the first of a run does not
    assert_exactly_once(outputs, truth)
    assert_investor_order(outputs, truth)


def _set_max_message_bytes(admin: AdminClient, topic: str, value: str | None) -> None:
    """Set `max.message.bytes` of `topic` (None: back to the broker's default)."""
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("max.message.bytes", value or "", incremental_operation=op)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def assert_investor_order(outputs: Outputs, truth: list[dict[str, Any]]) -> None:
    """Within each exchange topic, one investor's reports keep their ingress order."""
    index = {t["report_id"]: t["index"] for t in truth}
    for records in outputs.exchange.values():
        last: dict[str, int] = {}
        for r in records:
            position = index[r["report_id"]]
            assert position > last.get(r["trading_code"], -1), "per-investor order broken"
            last[r["trading_code"]] = position


def test_a_worker_joining_and_leaving_keeps_exactly_once(
    kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Two rebalances after the first worker has committed transactions: a second worker joins and
    takes partitions, then leaves while reports stream in. Each rebalance starts a new generation
    of the group, which the first worker's later offset commits must carry (KIP-447), or they are
    refused and the batch aborted and retried; every report still arrives exactly once."""
    market_dir, summary = small_market
    truth = load_truth(market_dir)
    lines = (market_dir / "ingress.jsonl").read_text().splitlines(keepends=True)
    thirds = [tmp_path / f"part{i}.jsonl" for i in range(3)]
    for i, path in enumerate(thirds):
        path.write_text("".join(lines[i * len(lines) // 3 : (i + 1) * len(lines) // 3]))
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env["LT_PIPELINE_BATCH_SIZE"] = "50"  # many transactions in each generation
        load_reference(ns.settings, market_dir)
        admin = AdminClient(ns.settings.kafka.client_config())
        ns.start_worker("first")
        fed = localrun.feed(ns.settings, thirds[0])
        localrun.wait_drained(ns.settings, fed, timeout=180)
        second = ns.start_worker("second")
        localrun.wait_group_stable(admin, ns.settings.kafka.group, 2)
        fed += localrun.feed(ns.settings, thirds[1])
        localrun.wait_drained(ns.settings, fed, timeout=180)
        feeder = threading.Thread(target=localrun.feed, args=(ns.settings, thirds[2]), kwargs={"rate": 1000.0})
        feeder.start()
        time.sleep(0.5)  # two seconds of feeding: the second worker leaves a quarter of the way in
        second.send_signal(signal.SIGTERM)  # leaves the group: the first worker takes every partition back
        assert second.wait(30) == 0, ns.worker_logs()[-2000:]
        feeder.join()
        drain(ns, truth, timeout=180)
        assert ns.stop_workers() == [0, 0], ns.worker_logs()[-2000:]
        outputs = read_outputs(ns.settings)
        # A worker that kept its old generation would have its first commit after each of the two
        # rebalances refused (ILLEGAL_GENERATION: an abort, and the batch retried). One such abort
        # may still come from a batch consumed just as a rebalance began: it must not commit under
        # the new generation, and the refusal is what rewinds it.
        refused = [line for line in ns.worker_logs().splitlines()
                   if '"aborting batch"' in line and '"ILLEGAL_GENERATION"' in line]  # fmt: skip
        assert len(refused) <= 1, refused
    assert_exactly_once(outputs, truth)
    instances = Counter(r["provenance"]["pipeline_instance"] for r in outputs.reports)
    assert set(instances) == {"first", "second"}, instances


def transactions_per_partition(ns: Namespace, truth: list[dict[str, Any]]) -> dict[int, int]:
    """Committed transactions per lt.reports partition, once every accepted report is there: each
    committed transaction leaves one marker in each partition it wrote, so a partition's
    transactions are the gaps between its records (its end offset less its records)."""
    client, reports = ns.settings.kafka.client_config(), ns.settings.topics.reports
    records = Counter(p for p, _, _ in readback.read_placed(client, [reports], decode=False)[reports])
    ends = readback.high_watermarks(client, [reports])
    assert sum(records.values()) == sum(t["outcome"] == "accepted" for t in truth)
    return {p: high - records[p] for (_, p), high in ends.items()}


def test_a_transaction_takes_the_records_of_its_commit_interval(
    kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Fed slowly, a worker commits once per commit interval, not once per record (transactions
    counted by their markers, `transactions_per_partition`)."""
    market_dir, summary = small_market
    truth = load_truth(market_dir)[:420]
    lines = (market_dir / "ingress.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "first.jsonl").write_text("".join(lines[:20]))
    (tmp_path / "slow.jsonl").write_text("".join(lines[20:420]))
    feed_seconds, interval_s = 4.0, 1.0
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env["LT_PIPELINE_COMMIT_INTERVAL_MS"] = str(int(interval_s * 1000))
        load_reference(ns.settings, market_dir)
        ns.start_worker("interval")
        localrun.feed(ns.settings, tmp_path / "first.jsonl")  # the worker is running before the slow feed
        localrun.wait_drained(ns.settings, 20, timeout=120)
        localrun.feed(ns.settings, tmp_path / "slow.jsonl", rate=400 / feed_seconds)
        drain(ns, truth, timeout=120)
        assert ns.stop_workers() == [0], ns.worker_logs()[-2000:]
        transactions = transactions_per_partition(ns, truth)
    # Each partition takes records throughout the slow feed: a transaction per interval, give or
    # take one at either end, and the first records' own; committing per consumed batch would
    # make it one per few records.
    expected = feed_seconds / interval_s
    assert all(expected - 1 <= n <= expected + 3 for n in transactions.values()), transactions


def test_a_worker_behind_a_backlog_takes_longer_transactions(
    kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A worker that starts behind the whole market commits once per backlog interval while it
    drains it, not once per commit interval: its transactions (`transactions_per_partition`) are
    the few of its first moments, the backlog's and the tail's."""
    market_dir, summary = small_market
    truth = load_truth(market_dir)
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env.update(LT_PIPELINE_COMMIT_INTERVAL_MS="20", LT_PIPELINE_BACKLOG_AFTER_MS="100",
                      LT_PIPELINE_BACKLOG_COMMIT_INTERVAL_MS="10000")  # fmt: skip
        load_reference(ns.settings, market_dir)
        localrun.feed(ns.settings, market_dir / "ingress.jsonl")  # all of it before the worker starts
        ns.start_worker("backlog")
        drain(ns, truth, timeout=180)
        assert ns.stop_workers() == [0], ns.worker_logs()[-2000:]
        transactions = transactions_per_partition(ns, truth)
    # 20 ms transactions for the first 100 ms of full batches (about five), one for the rest of
    # the backlog (it ends at its commit interval once a batch comes short), a few at the end:
    # 1-5 per partition here. Without the backlog interval, a transaction per 20 ms of the drain:
    # 27-33 per partition here (LT_PIPELINE_BACKLOG_COMMIT_INTERVAL_MS 0), and the test fails.
    assert all(1 <= n <= 15 for n in transactions.values()), transactions


def test_reference_update_applies_without_restart(kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]],
                                                  tmp_path: Path) -> None:  # fmt: skip
    market_dir, summary = small_market
    truth = load_truth(market_dir)
    lines = (market_dir / "ingress.jsonl").read_text().splitlines(keepends=True)
    half = len(lines) // 2
    (tmp_path / "first.jsonl").write_text("".join(lines[:half]))
    (tmp_path / "second.jsonl").write_text("".join(lines[half:]))
    # The app and broker whose authorization is revoked: the most used clean pair of the second half.
    pairs = Counter(
        (app, t["broker_id"]) for t in truth[half:] if t["outcome"] == "accepted" and "W403" not in t["warnings"]
        for app in t["app_ids"]
    )  # fmt: skip
    (app_id, broker_id), _ = pairs.most_common(1)[0]
    apps = refstore.read_records("apps", market_dir / "reference" / "apps.json")
    revoked = next(a for a in apps if a["app_id"] == app_id)
    revoked = dict(revoked, authorized_brokers=[b for b in revoked["authorized_brokers"] if b != broker_id])

    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        load_reference(ns.settings, market_dir)
        ns.start_worker("ref")
        localrun.feed(ns.settings, tmp_path / "first.jsonl")
        localrun.wait_drained(ns.settings, half, timeout=180)
        refstore.publish(ns.settings, "apps", [revoked])
        time.sleep(2.0)  # the worker polls reference topics between batches
        localrun.feed(ns.settings, tmp_path / "second.jsonl")
        drain(ns, truth, timeout=180)
        assert ns.stop_workers() == [0]
        outputs = read_outputs(ns.settings)

    feedback = {f["report_id"]: f for f in outputs.feedback}
    affected = [t for t in truth[half:] if t["outcome"] == "accepted" and app_id in t["app_ids"]
                and t["broker_id"] == broker_id]  # fmt: skip
    assert affected
    for t in affected:
        assert "W403" in feedback[t["report_id"]]["codes"], t["report_id"]
    before = [t for t in truth[:half] if t["outcome"] == "accepted" and app_id in t["app_ids"]
              and t["broker_id"] == broker_id]  # fmt: skip
    for t in before:
        assert ("W403" in feedback[t["report_id"]]["codes"]) == ("W403" in t["warnings"])


def test_metrics_and_subscribe_resume(kafka_bootstrap: str, small_market: tuple[Path, dict[str, Any]],
                                      tmp_path: Path) -> None:  # fmt: skip
    """The worker's Prometheus counters match the ground truth; `lookthrough subscribe` run twice
    delivers every SHFE record once, in two parts."""
    import json
    import subprocess
    import sys
    import urllib.request

    market_dir, summary = small_market
    truth = load_truth(market_dir)
    expected = sorted(t["report_id"] for t in truth if "SHFE" in t["exchanges"])
    (port,) = free_ports(1)
    with namespace(kafka_bootstrap, tmp_path, summary["keyring"]) as ns:
        ns.env["LT_PIPELINE_METRICS_PORT"] = str(port)
        load_reference(ns.settings, market_dir)
        ns.start_worker("sub")
        localrun.feed(ns.settings, market_dir / "ingress.jsonl")
        drain(ns, truth, timeout=180)
        # The counters move when the worker settles a commit, which it does on its next idle poll
        # (up to 0.2 s after the outputs became visible): scrape until they have, or 10 s passed.
        deadline = time.monotonic() + 10
        while True:
            scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            samples = _samples(scraped)
            counted = sum(v for (name, _), v in samples.items() if name == "lt_records_in_total")
            if counted == len(truth) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counted == len(truth)
        rejects = Counter(t["code"] for t in truth if t["outcome"] == "rejected")
        assert {label: int(v) for (name, label), v in samples.items() if name == "lt_rejects_total"} == rejects
        planted = Counter(w for t in truth if t["outcome"] == "accepted" for w in t["warnings"])
        got = {label: int(v) for (name, label), v in samples.items() if name == "lt_warnings_total" and label != "W409"}
        assert got == dict(planted)
        out = tmp_path / "shfe.jsonl"
        command = [sys.executable, "-m", "pipeline", "subscribe", "--exchange", "SHFE", "--out", str(out)]
        first = subprocess.run([*command, "--max-records", "100"], env=ns.env | dict(__import__("os").environ),
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert first.returncode == 0, first.stderr
        part = len(out.read_text().splitlines())
        assert 100 <= part < len(expected)
        second = subprocess.run([*command, "--idle-exit", "3"], env=ns.env | dict(__import__("os").environ),
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert second.returncode == 0, second.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["report_id"] for r in records) == expected
    assert all("investor_id" not in r for r in records)


def _samples(text: str) -> dict[tuple[str, str], float]:
    """(metric name, first label value) → value, for the counters of the Prometheus text format."""
    import re

    out: dict[tuple[str, str], float] = {}
    for match in re.finditer(r'^(lt_\w+_total)\{\w+="([^"]*)"\} ([0-9.e+]+)$', text, re.MULTILINE):
        out[(match.group(1), match.group(2))] = float(match.group(3))
    return out
