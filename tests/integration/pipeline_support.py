"""Helpers for the pipeline integration tests: an isolated topic namespace per test,
the generated market, workers as real subprocesses, and the ground-truth comparison."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from pipeline import localrun, readback, refstore, schemas
from pipeline.config import Settings
from pipeline.errors import RejectError
from pipeline.topics import ensure_topics, output_topics


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (the kernel's choice, released again)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Namespace:
    env: dict[str, str]
    settings: Settings
    workdir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, instance: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A worker with the namespace's environment plus `env` (e.g. the pipeline principal's credentials)."""
        log = open(self.workdir / f"worker-{instance}.log", "ab")  # noqa: SIM115 - kept open for the child
        worker = localrun.start_worker({**self.env, **(env or {})}, instance, log)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> list[int | None]:
        codes = []
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            codes.append(worker.returncode)
        self.workers.clear()
        return codes

    def worker_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("worker-*.log")))


@contextmanager
def namespace(
    bootstrap: str, workdir: Path, keyring: str, extra_env: Mapping[str, str] | None = None
) -> Iterator[Namespace]:
    """Topics under a fresh prefix; every topic of the prefix is deleted afterwards.

    `extra_env` adds LT_* variables, e.g. the SASL settings of a secured cluster; the test
    process and the workers then authenticate with them.
    """
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {**localrun.isolated_env(prefix, bootstrap), **(extra_env or {})}
    env.update(LT_PIPELINE_KEYRING=keyring, LT_PIPELINE_FINGERPRINT_KEY="test-fingerprint-key-0123456789ab",
               LT_KAFKA_PARTITIONS="4")  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = Settings.from_env()
    client = settings.kafka.client_config()
    admin = AdminClient(client)
    ensure_topics(admin, settings, output_topics(settings))
    ns = Namespace(env, settings, workdir)
    try:
        yield ns
    finally:
        ns.stop_workers()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        names = readback.topics_matching(client, prefix)
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                future.result(timeout=60)


def onboard_reporters(ns: Namespace, truth: list[dict[str, Any]]) -> AdminClient:
    """Create the ingress topics of `truth`'s reporters, as onboarding does, so that workers get
    partitions before the first report; returns the admin client used."""
    admin = AdminClient(ns.settings.kafka.client_config())
    localrun.onboard(admin, ns.settings, {t["topic"].removeprefix("lt.ingress.") for t in truth})
    return admin


def drain(ns: Namespace, truth: list[dict[str, Any]], timeout: float = 300.0) -> None:
    """Wait until every report has its feedback; if they do not all come, fail saying which reports
    have none, which have more than one, where the missing ones sit on the ingress topics against
    the group's committed offsets, and what the workers logged."""
    try:
        localrun.wait_drained(ns.settings, len(truth), timeout=timeout)
    except TimeoutError as exc:
        try:
            details = shortfall(ns, truth)
        except Exception as failure:  # the shortfall, not its details, is what fails the test
            details = f"(details unavailable: {failure!r}) worker log:\n{ns.worker_logs()[-6000:]}"
        raise AssertionError(f"{exc}: {details}") from None


def shortfall(ns: Namespace, truth: list[dict[str, Any]]) -> str:
    """What `drain` reports when feedback is missing."""
    client = ns.settings.kafka.client_config()
    feedback = Counter(f["report_id"] for f in read_outputs(ns.settings).feedback)
    # E101 feedback is named by the record's position, not its report ID.
    missing = {t["report_id"] for t in truth if t["code"] != "E101" and t["report_id"] not in feedback}
    duplicated = sorted(k for k, n in feedback.items() if n > 1)
    topics = readback.topics_matching(client, ns.settings.topics.ingress_prefix)
    ingress = readback.read_placed(client, topics, decode=False)
    found, position = [], Counter[tuple[str, int]]()
    for topic, records in ingress.items():
        for partition, _, raw in records:
            position[(topic, partition)] += 1
            with contextlib.suppress(RejectError):
                if schemas.decode(raw)[1]["report_id"] in missing:
                    found.append(f"{topic}[{partition}] record {position[(topic, partition)]}")
    uncommitted = sum(len(r) for r in readback.read_placed(client, topics, decode=False, committed_only=False).values())
    ends = readback.high_watermarks(client, topics)
    committed = readback.committed_offsets(client, ns.settings.kafka.group, ends)
    behind = {f"{t}[{p}]": (offset, ends[(t, p)]) for (t, p), offset in committed.items() if offset != ends[(t, p)]}
    return (
        f"{len(missing)} reports without feedback, e.g. {sorted(missing)[:5]}, {len(found)} of them on ingress: "
        f"{found[:5]}; {sum(len(r) for r in ingress.values())} ingress records read ({uncommitted} with "
        f"read_uncommitted), of {sum(ends.values())} (the sum of the ingress partitions' end offsets); "
        f"partitions whose committed offset is not "
        f"their end (committed, end): {behind}; {len(duplicated)} reports with more feedback than one, e.g. "
        f"{duplicated[:5]}; worker log:\n{ns.worker_logs()[-6000:]}"
    )


def load_reference(settings: Settings, market_dir: Path) -> None:
    refstore.publish_directory(settings, market_dir / "reference")


def load_truth(market_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (market_dir / "truth.jsonl").read_text().splitlines()]


@dataclass
class Outputs:
    reports: list[dict[str, Any]]
    dlq: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    exchange: dict[str, list[dict[str, Any]]]


def read_outputs(settings: Settings) -> Outputs:
    t = settings.topics
    client = settings.kafka.client_config()
    feedback_topics = readback.topics_matching(client, t.feedback_prefix)
    exchange_topics = readback.topics_matching(client, t.exchange_prefix)
    data = readback.read_all(client, [t.reports, t.dlq, *feedback_topics, *exchange_topics])
    return Outputs(
        reports=[v for _, v in data[t.reports]],
        dlq=[v for _, v in data[t.dlq]],
        feedback=[v for topic in feedback_topics for _, v in data[topic]],
        exchange={topic.removeprefix(t.exchange_prefix): [v for _, v in data[topic]] for topic in exchange_topics},
    )


def assert_exactly_once(outputs: Outputs, truth: list[dict[str, Any]]) -> None:
    """Every topic's content equals the ground truth: each accepted report once, nothing else."""
    accepted = {t["report_id"]: t for t in truth if t["outcome"] == "accepted"}
    rejected = [t for t in truth if t["outcome"] == "rejected"]

    report_ids = Counter(r["report_id"] for r in outputs.reports)
    missing = sorted(set(accepted) - set(report_ids))
    extra = sorted(set(report_ids) - set(accepted))
    duplicated = sorted(k for k, n in report_ids.items() if n > 1)
    assert not (missing or extra or duplicated), (
        f"lt.reports must hold each accepted report exactly once: {len(missing)} missing {missing[:5]}, "
        f"{len(extra)} unexpected {extra[:5]}, {len(duplicated)} duplicated {duplicated[:5]}"
    )

    expected_exchange: dict[str, Counter[tuple[str, str]]] = {}
    for t in accepted.values():
        for ex, code in t["exchanges"].items():
            expected_exchange.setdefault(ex, Counter())[(t["report_id"], code)] += 1
    got_exchange = {
        ex: Counter((r["report_id"], r["trading_code"]) for r in records)
        for ex, records in outputs.exchange.items() if records
    }  # fmt: skip
    assert got_exchange == expected_exchange

    assert sorted(d["error_code"] for d in outputs.dlq) == sorted(t["code"] for t in rejected)
    assert len(truth) == len(outputs.reports) + len(outputs.dlq), "in = delivered + rejected"
    assert len(outputs.feedback) == len(truth), "one feedback record per report"


def assert_outputs_follow_ingress(settings: Settings) -> None:
    """Every output of a report is on partition p mod n of its topic, where p is the partition its
    ingress record was read from (found by reading the ingress topics back) and n the topic's
    partition count: the placement `pipeline.worker` promises, which keeps per-investor order."""
    client = settings.kafka.client_config()
    t = settings.topics
    by_id: dict[str, set[int]] = {}
    by_bytes: dict[bytes, set[int]] = {}
    for records in readback.read_placed(client, readback.topics_matching(client, t.ingress_prefix),
                                        decode=False).values():  # fmt: skip
        for partition, _, raw in records:
            by_bytes.setdefault(raw, set()).add(partition)
            # Not decodable (E101): placed by its bytes, or by the position naming its feedback.
            with contextlib.suppress(RejectError):
                by_id.setdefault(schemas.decode(raw)[1]["report_id"], set()).add(partition)
    topics = [t.reports, t.dlq, *readback.topics_matching(client, t.exchange_prefix),
              *readback.topics_matching(client, t.feedback_prefix)]  # fmt: skip
    metadata = AdminClient(client).list_topics(timeout=10).topics
    counts = {name: len(metadata[name].partitions) for name in topics}
    checked = 0
    for topic, records in readback.read_placed(client, topics).items():
        for partition, _, value in records:
            if topic == t.dlq:
                origins = by_bytes[value["original_value"]]
            elif value["report_id"] in by_id:
                origins = by_id[value["report_id"]]
            else:  # feedback on an undecodable record, named "topic/partition/offset"
                origins = {int(value["report_id"].rsplit("/", 2)[1])}
            assert partition in {p % counts[topic] for p in origins}, (topic, partition, origins)
            checked += 1
    assert checked > 0
