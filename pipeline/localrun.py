"""Run the pipeline locally: worker subprocesses, feeding a generated market, waiting for the drain.

Shared by `lookthrough demo` and the integration tests, so both exercise the same path a
operator runs: `lookthrough run` processes in their own interpreters.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from confluent_kafka import ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient

from pipeline.config import Settings
from pipeline.readback import high_watermarks, read_all, topics_matching
from pipeline.topics import ensure_topics, ingress_topic


def isolated_env(prefix: str, bootstrap: str) -> dict[str, str]:
    """LT_* variables giving every topic and the consumer group a `prefix`, for side-by-side runs."""
    return {
        "LT_KAFKA_BOOTSTRAP": bootstrap,
        "LT_KAFKA_GROUP": f"{prefix}pipeline",
        "LT_TOPICS_INGRESS_PREFIX": f"{prefix}ingress.",
        "LT_TOPICS_EXCHANGE_PREFIX": f"{prefix}exchange.",
        "LT_TOPICS_REPORTS": f"{prefix}reports",
        "LT_TOPICS_SHARING_STATE": f"{prefix}state.device-sharing",
        "LT_TOPICS_FEEDBACK_PREFIX": f"{prefix}feedback.",
        "LT_TOPICS_DLQ": f"{prefix}dlq",
        "LT_TOPICS_REF_PREFIX": f"{prefix}ref.",
    }


def start_worker(env: Mapping[str, str], instance: str, log: IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """Start `lookthrough run --instance <instance>` with `env` added to this environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--instance", instance],
        env={**os.environ, **env},
        stdout=log or subprocess.DEVNULL,
        stderr=log or subprocess.DEVNULL,
    )


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (a worker's decrypting processes, `pipeline.ahead`), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # ended meanwhile
            if parent == pid:
                children.append(int(entry.name))
    return children


def onboard(admin: AdminClient, settings: Settings, reporters: Iterable[str]) -> None:
    """Create the reporters' ingress topics with the configured partitions, as onboarding does."""
    ensure_topics(admin, settings, [ingress_topic(settings, reporter) for reporter in sorted(reporters)])


def feed(settings: Settings, ingress_jsonl: Path, *, rate: float = 0.0, progress: bool = False) -> int:
    """Produce a generated ingress file, mapping `lt.ingress.` onto the configured ingress prefix."""
    records = [json.loads(line) for line in ingress_jsonl.read_text().splitlines()]
    reporters = {r["topic"].removeprefix("lt.ingress.") for r in records}
    onboard(AdminClient(settings.kafka.client_config()), settings, reporters)
    topics = {settings.topics.ingress(reporter) for reporter in reporters}
    before = high_watermarks(settings.kafka.client_config(), topics)
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5, "compression.type": "lz4",
                         "partitioner": "murmur2_random"})  # fmt: skip
    failures: list[str] = []
    placed: Counter[tuple[str, int, int | None]] = Counter()

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            placed[(msg.topic(), msg.partition(), msg.offset())] += 1

    start = time.monotonic()
    for count, record in enumerate(records, 1):
        topic = settings.topics.ingress(record["topic"].removeprefix("lt.ingress."))
        value = base64.b64decode(record["value"])
        while True:
            try:
                producer.produce(topic, value, key=record["key"].encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if rate > 0:
            ahead = count / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        if progress and (count % 500 == 0 or count == len(records)):
            _bar("feeding", count, len(records))
    # A record still queued when the producer goes away is dropped without a delivery report, so
    # an unfinished flush is a failure too, not a silent shortfall.
    remaining = producer.flush(120)
    if failures or remaining:
        reason = failures[0] if failures else f"{remaining} still queued after 120 s"
        raise RuntimeError(f"{len(failures) + remaining} ingress records were not delivered: {reason}")
    _check_placed(settings, topics, before, placed)
    return len(records)


def _check_placed(settings: Settings, topics: Iterable[str], before: Mapping[tuple[str, int], int],
                  placed: Counter[tuple[str, int, int | None]]) -> None:  # fmt: skip
    """Raise unless every acknowledged record is on its partition: at an offset of its own, and
    the partition grew by the records acknowledged there (nobody else writes a reporter's topic)."""
    # librdkafka acknowledges without an offset the records of a failed request when a later request
    # succeeds (its "implicit ack"), and the broker answers a batch it takes for a retry with the
    # first one's offset: either can be a record it never appended.
    unplaced = sorted({(topic, partition) for topic, partition, offset in placed if offset is None or offset < 0})
    shared = sorted((t, p, o) for (t, p, o), n in placed.items() if n > 1 and o is not None and o >= 0)
    if unplaced or shared:
        raise RuntimeError(f"ingress records were acknowledged without an offset, in {unplaced[:5]}, or at one "
                           f"another record has: {shared[:5]}")
    after = high_watermarks(settings.kafka.client_config(), topics)
    acknowledged = Counter((topic, partition) for topic, partition, _ in placed)
    grown = {tp: after.get(tp, 0) - before.get(tp, 0) for tp in acknowledged}
    short = {tp: (grown[tp], n) for tp, n in acknowledged.items() if grown[tp] < n}
    if short:
        raise RuntimeError(f"ingress partitions grew by fewer records than were acknowledged there "
                           f"(grown, acknowledged): {short}")


def _bar(label: str, done: int, total: int) -> None:
    if not sys.stderr.isatty():
        if done >= total or done * 10 // max(total, 1) != (done - 500) * 10 // max(total, 1):
            sys.stderr.write(f"{label}: {done}/{total}\n")
        return
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    sys.stderr.flush()


def feedback_count(settings: Settings) -> int:
    """Committed feedback records: exactly one per processed report."""
    client = settings.kafka.client_config()
    topics = topics_matching(client, settings.topics.feedback_prefix)
    # High watermarks include transaction markers, so count by reading.
    return sum(len(v) for v in read_all(client, topics, decode=False).values())


def wait_group_stable(admin: AdminClient, group: str, members: int, timeout: float = 60.0) -> None:
    """Until the consumer group is stable with `members` members that all have partitions."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description = admin.describe_consumer_groups([group])[group].result()
        if (description.state == ConsumerGroupState.STABLE and len(description.members) == members
                and all(m.assignment.topic_partitions for m in description.members)):  # fmt: skip
            return
        time.sleep(0.05)
    raise TimeoutError(f"consumer group {group} did not become stable with {members} members")


def wait_drained(settings: Settings, expected: int, timeout: float = 300.0, progress: bool = False) -> int:
    """Block until `expected` feedback records are committed; return the count seen."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        before, seen = seen, feedback_count(settings)
        if progress and seen != before:
            _bar("processed", min(seen, expected), expected)
        if seen >= expected:
            return seen
        time.sleep(1.0)
    raise TimeoutError(f"only {seen} of {expected} reports processed within {timeout:.0f}s")
