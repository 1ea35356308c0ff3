"""`lookthrough bench pipeline`: end-to-end records/s on the real broker beside two floors.

Per suite, on clean generated reports already waiting in the ingress topics:
- Kafka floor: consume the same bytes and produce them again, in transactions of the same
  size, with no processing (one process, like one worker);
- crypto floor: `Keyring.decrypt` of the same blobs on one core;
- pipeline: one `lookthrough run` worker process from start to the last committed offset;
- latency: with a warm worker, reports fed at half the measured rate; time from the ingress
  record's creation to its lt.reports record becoming visible to a read_committed consumer;
- worker CPU time per report over the throughput phase (all its threads; robust to a busy
  machine, unlike rates), and peak RSS of the worker (VmHWM).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import localrun, refstore
from pipeline.codec import parse_report_line
from pipeline.commands.generate import generate_market
from pipeline.config import Settings
from pipeline.crypto.keyring import Keyring
from pipeline.schemas import decode
from pipeline.topics import TopicSpec, ensure_topics, output_topics


@dataclass
class PipelineFigures:
    suite: str
    records: int
    pipeline_per_s: float
    kafka_floor_per_s: float
    crypto_floor_per_s: float
    latency_rate: float
    p50_ms: float
    p99_ms: float
    worker_peak_rss_mb: float
    worker_cpu_us: float


class _Committed:
    """Reads how far a consumer group has committed over some topics (one client, reused)."""

    def __init__(self, client: dict[str, object], group: str, topics: list[str]) -> None:
        self.consumer = Consumer({**client, "group.id": group, "enable.auto.commit": False})
        metadata = self.consumer.list_topics(timeout=10).topics
        self.partitions = [TopicPartition(t, p) for t in topics for p in metadata[t].partitions]

    def total(self) -> int:
        return sum(max(tp.offset, 0) for tp in self.consumer.committed(self.partitions, timeout=10))

    def close(self) -> None:
        self.consumer.close()


def _kafka_floor(settings: Settings, topics: list[str], total: int, batch: int) -> float:
    """Consume and re-produce the ingress bytes transactionally, with no processing."""
    client = settings.kafka.client_config()
    sink = settings.topics.reports + ".floor"
    ensure_topics(AdminClient(client), settings, [TopicSpec(sink, settings.kafka.partitions, {})])
    consumer = Consumer({**client, "group.id": f"floor-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    producer = Producer({**client, "transactional.id": f"floor-{uuid.uuid4().hex[:6]}", "linger.ms": 5,
                         "compression.type": "lz4"})  # fmt: skip
    producer.init_transactions(30)
    consumer.subscribe(topics)
    done, started = 0, 0.0
    while done < total:
        messages = [m for m in consumer.consume(batch, timeout=1.0) if m.error() is None]
        if not messages:
            continue
        started = started or time.perf_counter()
        producer.begin_transaction()
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            producer.produce(sink, m.value(), key=m.key())
            offsets[(str(m.topic()), int(m.partition() or 0))] = int(m.offset() or 0) + 1
        producer.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                             consumer.consumer_group_metadata())  # fmt: skip
        producer.commit_transaction()
        done += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return total / elapsed


def _crypto_floor(keyring: Keyring, ingress: Path) -> float:
    import base64
    import json

    lines = []
    for raw in ingress.read_text().splitlines():
        _, envelope = decode(base64.b64decode(json.loads(raw)["value"]))
        lines.append(parse_report_line(envelope["report"]))
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for line in lines:
            keyring.decrypt(line.vendor_id, line.key_version, line.terminal_info)
        rates.append(len(lines) / (time.perf_counter() - start))
    return statistics.median(rates)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class _Visibility(threading.Thread):
    """Records when each lt.reports record becomes visible, keyed by its ingress position."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({**settings.kafka.client_config(), "group.id": f"lat-{uuid.uuid4().hex[:6]}",
                                  "auto.offset.reset": "latest", "isolation.level": "read_committed"})  # fmt: skip
        self.consumer.subscribe([settings.topics.reports])
        self.seen: dict[tuple[str, int, int], float] = {}
        self.running = True

    def run(self) -> None:
        while self.running:
            # A record as soon as it arrives, then whatever else is already queued: consume(n, t)
            # alone would wait up to t for n records and add that wait to every latency.
            first = self.consumer.poll(0.2)
            if first is None:
                continue
            now = time.time()
            for m in [first, *self.consumer.consume(500, timeout=0)]:
                if m.error() is None and m.value() is not None:
                    source = decode(m.value())[1]["source"]
                    self.seen[(source["topic"], source["partition"], source["offset"])] = now
        self.consumer.close()


def _latency(settings: Settings, ingress: Path, rate: float) -> tuple[float, float]:
    visibility = _Visibility(settings)
    visibility.start()
    time.sleep(3.0)  # let the consumer join before anything is fed
    created: dict[tuple[str, int, int], float] = {}
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "linger.ms": 0})

    def delivered(err: KafkaError | None, msg: object) -> None:
        if err is None:
            created[(msg.topic(), msg.partition(), msg.offset())] = msg.timestamp()[1] / 1000  # type: ignore[attr-defined]

    import base64
    import json

    start = time.monotonic()
    for count, raw in enumerate(ingress.read_text().splitlines(), 1):
        record = json.loads(raw)
        topic = settings.topics.ingress(record["topic"].removeprefix("lt.ingress."))
        producer.produce(topic, base64.b64decode(record["value"]), key=record["key"].encode(), on_delivery=delivered)
        producer.poll(0)
        ahead = count / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush(30)
    deadline = time.monotonic() + 60
    while len(visibility.seen) < len(created) and time.monotonic() < deadline:
        time.sleep(0.2)
    visibility.running = False
    visibility.join(5)
    latencies = sorted((visibility.seen[k] - t) * 1000 for k, t in created.items() if k in visibility.seen)
    if not latencies:
        return float("nan"), float("nan")
    return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


def measure_suite(suite: str, records: int, latency_records: int, workdir: Path) -> PipelineFigures:
    market = workdir / suite
    # One market (one keyring) for both phases: the throughput part, then the latency part.
    summary = generate_market(market, reports=records + latency_records, seed=5, defect_rate=0.0, suites=(suite,))
    lines = (market / "ingress.jsonl").read_text().splitlines(keepends=True)
    (market / "throughput.jsonl").write_text("".join(lines[:records]))
    (market / "latency.jsonl").write_text("".join(lines[records:]))
    base = Settings.from_env()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env = localrun.isolated_env(prefix, base.kafka.bootstrap)
    env.update(LT_PIPELINE_KEYRING=summary["keyring"], LT_PIPELINE_FINGERPRINT_KEY=uuid.uuid4().hex)
    os.environ.update(env)
    settings = Settings.from_env()
    client = settings.kafka.client_config()
    ensure_topics(AdminClient(client), settings, output_topics(settings))
    refstore.publish_directory(settings, market / "reference")
    total = localrun.feed(settings, market / "throughput.jsonl")
    ingress_topics = sorted({settings.topics.ingress(r) for r in _reporters(market / "ingress.jsonl")})

    kafka_floor = _kafka_floor(settings, ingress_topics, total, settings.pipeline.batch_size)
    crypto_floor = _crypto_floor(Keyring.load(summary["keyring"], "production"), market / "throughput.jsonl")

    log = open(workdir / f"{suite}-worker.log", "ab")  # noqa: SIM115 - handed to the worker process
    worker = localrun.start_worker(env, f"bench-{suite}", log)
    committed = _Committed(client, settings.kafka.group, ingress_topics)
    try:
        first_seen, done = 0.0, 0
        first_count, first_cpu = 0, 0.0
        while done < total:
            time.sleep(0.2)
            done = committed.total()
            if done and not first_seen:
                first_seen, first_count, first_cpu = time.perf_counter(), done, _cpu_seconds(worker.pid)
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log.name}")
        pipeline_rate = (total - first_count) / max(time.perf_counter() - first_seen, 1e-9)
        cpu_us = (_cpu_seconds(worker.pid) - first_cpu) / max(total - first_count, 1) * 1e6
        rate = pipeline_rate / 2
        p50, p99 = _latency(settings, market / "latency.jsonl", rate)
        rss = _peak_rss_mb(worker.pid)
    finally:
        committed.close()
        worker.terminate()
        worker.wait(30)
        log.close()
        admin = AdminClient(client)
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                future.result()
    label = {"x25519": "X25519-HKDF-SHA256/AES-256-GCM", "rsa": "RSA2048-OAEP-SHA256/AES-256-GCM",
             "sm4": "SM4-GCM"}[suite]  # fmt: skip
    return PipelineFigures(label, total, pipeline_rate, kafka_floor, crypto_floor, rate, p50, p99, rss, cpu_us)


def _reporters(ingress: Path) -> set[str]:
    import json

    return {json.loads(line)["topic"].removeprefix("lt.ingress.") for line in ingress.read_text().splitlines()}


def run(records: dict[str, int], latency_records: int) -> list[PipelineFigures]:
    with tempfile.TemporaryDirectory(prefix="lt-bench-pipeline-") as tmp:
        return [measure_suite(suite, n, latency_records, Path(tmp)) for suite, n in records.items()]


def report(figures: list[PipelineFigures]) -> str:
    rows = [
        f"{'suite':<33}{'records':>8}{'pipeline/s':>11}{'kafka floor':>12}{'ratio':>7}{'crypto floor':>13}"
        f"{'ratio':>7}{'@ rate/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'RSS MB':>8}{'CPU µs':>8}"
    ]
    for f in figures:
        rows.append(
            f"{f.suite:<33}{f.records:>8}{f.pipeline_per_s:>11,.0f}{f.kafka_floor_per_s:>12,.0f}"
            f"{f.pipeline_per_s / f.kafka_floor_per_s:>7.0%}{f.crypto_floor_per_s:>13,.0f}"
            f"{f.pipeline_per_s / f.crypto_floor_per_s:>7.0%}{f.latency_rate:>9,.0f}{f.p50_ms:>8.1f}{f.p99_ms:>8.1f}"
            f"{f.worker_peak_rss_mb:>8.0f}{f.worker_cpu_us:>8.0f}"
        )
    rows.append("one worker process; floors in the same run; latency = ingress create → visible on lt.reports;")
    rows.append("CPU µs = worker CPU time (all threads) per report in the throughput phase")
    return "\n".join(rows)
