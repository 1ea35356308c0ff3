"""`lookthrough bench pipeline`: end-to-end records/s on the real broker beside two floors.

Per suite and number of workers N, on clean generated reports, with every floor at the same
parallelism as the pipeline (N processes):
- pipeline: N `lookthrough run` worker processes join one consumer group; once it is stable,
  a warm-up share of reports goes through them untimed, then the measured reports are fed, and
  the rate is that of the backlog left when feeding ended, up to the last committed offset;
- Kafka floor (workers stopped): N processes, each with every Nth ingress partition, consume
  the same bytes and produce them again, in transactions of the same size, no processing;
- crypto floor: `Keyring.decrypt` of the same blobs in N processes;
- latency: with the workers warm, reports fed at half the measured rate (or at a given rate,
  which compares runs whatever the machine's speed at the time); time from the ingress
  record's creation to its feedback (committed in the same transaction as its lt.reports and
  exchange records) becoming visible to a read_committed consumer, and to the worker's write of
  that feedback (its timestamp), which tells a worker falling behind from a slow commit;
- the workers' CPU time per report over the throughput phase (all threads, and the decrypting
  processes; robust to a busy machine, unlike rates) and the local broker's, the same two over
  the latency phase (where the broker also takes the feed, so they show how full the machine is
  at half rate), and peak RSS per worker (VmHWM, its decrypting processes' added).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import localrun, refstore
from pipeline.codec import parse_report_line
from pipeline.commands.generate import generate_market
from pipeline.config import Settings
from pipeline.crypto.keyring import Keyring
from pipeline.reporter import PRODUCER_DEFAULTS
from pipeline.schemas import decode
from pipeline.topics import TopicSpec, ensure_topics, ingress_topic, output_topics

# Reports fed through the workers, untimed, before the throughput phase (at most half its count).
WARMUP_RECORDS = 10_000


@dataclass
class PipelineFigures:
    suite: str
    workers: int
    records: float  # reports measured (a median of counts when several runs are summarized)
    pipeline_per_s: float
    kafka_floor_per_s: float
    crypto_floor_per_s: float
    latency_rate: float
    p50_ms: float
    p99_ms: float
    p99_written_ms: float  # ingress create → the worker's write of its outputs
    worker_peak_rss_mb: float
    worker_cpu_us: float
    broker_cpu_us: float
    latency_worker_cpu_us: float
    latency_broker_cpu_us: float


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


def _parallel(target: Callable[..., tuple[float, float]], args: Sequence[tuple[Any, ...]]) -> list[tuple[float, float]]:
    """Run ``target(start_at, *a)`` for each ``a`` in its own fresh interpreter; their (start, end) times.

    Every process starts work at the same ``start_at`` and times itself with ``time.monotonic``
    (CLOCK_MONOTONIC, so the processes' times compare), after its interpreter and clients are up.
    """
    start_at = time.monotonic() + 3.0 + len(args)
    with multiprocessing.get_context("spawn").Pool(len(args)) as pool:
        return pool.starmap(target, [(start_at, *a) for a in args])


def _span_rate(total: int, spans: list[tuple[float, float]]) -> float:
    return total / (max(end for _, end in spans) - min(start for start, _ in spans))


def _wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _kafka_floor(settings: Settings, topics: list[str], batch: int, processes: int) -> float:
    """Consume and re-produce the ingress bytes transactionally, with no processing, in N processes.

    Each process takes every Nth partition (assigned, not subscribed, so nobody starts alone
    before a rebalance) and copies it to its end; the rate counts every record in the topics.
    """
    client = settings.kafka.client_config()
    sink = settings.topics.reports + ".floor"
    ensure_topics(AdminClient(client), settings, [TopicSpec(sink, settings.kafka.partitions, {})])
    group = f"floor-{uuid.uuid4().hex[:6]}"
    probe = Consumer({**client, "group.id": group})
    metadata = probe.list_topics(timeout=10).topics
    partitions = [(t, p) for t in topics for p in sorted(metadata[t].partitions)]
    ends = {tp: probe.get_watermark_offsets(TopicPartition(*tp), timeout=10)[1] for tp in partitions}
    probe.close()
    shares = [{tp: ends[tp] for tp in partitions[i::processes]} for i in range(processes)]
    spans = _parallel(_pass_through, [(client, group, share, sink, batch) for share in shares])
    return _span_rate(sum(ends.values()), spans)


def _pass_through(
    start_at: float, client: dict[str, object], group: str, ends: dict[tuple[str, int], int], sink: str, batch: int
) -> tuple[float, float]:
    """One floor process: copy its partitions up to `ends` in transactions of `batch` records."""
    consumer = Consumer({**client, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    producer = Producer({**client, "transactional.id": f"{group}-{uuid.uuid4().hex[:6]}", "linger.ms": 5,
                         "compression.type": "lz4"})  # fmt: skip
    producer.init_transactions(30)
    consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
    left = {tp: end for tp, end in ends.items() if end > 0}
    _wait_until(start_at)
    started = time.monotonic()
    while left:
        messages = [m for m in consumer.consume(batch, timeout=0.2) if m.error() is None]
        if not messages:
            continue
        producer.begin_transaction()
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            producer.produce(sink, m.value(), key=m.key())
            offsets[(str(m.topic()), int(m.partition() or 0))] = int(m.offset() or 0) + 1
        producer.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                             consumer.consumer_group_metadata())  # fmt: skip
        producer.commit_transaction()
        # Positions, not record offsets: a position also moves past transaction markers.
        for position in consumer.position([TopicPartition(t, p) for t, p in left]):
            if position.offset >= left[(position.topic, position.partition)]:
                del left[(position.topic, position.partition)]
    ended = time.monotonic()
    consumer.close()
    return started, ended


def _ingress(path: Path) -> list[tuple[str, bytes, bytes]]:
    """(reporter, key, value) of each record of a generated `ingress.jsonl`."""
    records = [json.loads(raw) for raw in path.read_text().splitlines()]
    return [(r["topic"].removeprefix("lt.ingress."), r["key"].encode(), base64.b64decode(r["value"])) for r in records]


def _crypto_floor(keyring_path: str, ingress: Path, processes: int) -> float:
    """`Keyring.decrypt` of every blob, the blobs split over N processes; median of three runs."""
    blobs = []
    for _, _, value in _ingress(ingress):
        _, envelope = decode(value)
        line = parse_report_line(envelope["report"])
        blobs.append((line.vendor_id, line.key_version, line.terminal_info))
    shares = [(keyring_path, blobs[i::processes]) for i in range(processes)]
    return statistics.median(_span_rate(len(blobs), _parallel(_decrypt_all, shares)) for _ in range(3))


def _decrypt_all(start_at: float, keyring_path: str, blobs: list[tuple[str, int, bytes]]) -> tuple[float, float]:
    keyring = Keyring.load(keyring_path, "production")
    keyring.decrypt(*blobs[0])  # key loading and first-use costs stay out of the timing
    _wait_until(start_at)
    start = time.monotonic()
    for vendor_id, key_version, blob in blobs:
        keyring.decrypt(vendor_id, key_version, blob)
    return start, time.monotonic()


def _wait_committed(committed: _Committed, count: int, workers: list[subprocess.Popen[bytes]], log: str) -> None:
    """Until the workers' group has committed `count` ingress records; raises if a worker exits."""
    while committed.total() < count:
        time.sleep(0.1)
        for worker in workers:
            if worker.poll() is not None:
                raise RuntimeError(f"a worker exited with {worker.returncode}; see {log}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """`pid` and the processes it started (a worker's decrypting processes, `pipeline.ahead`)."""
    return [pid, *localrun.child_pids(pid)]


def _family_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in _family(pid):
        with contextlib.suppress(OSError):
            total += _cpu_seconds(member)
    return total


def _local_broker_pid() -> int | None:
    """The pid of the broker `infra/kafka/start` runs, if it runs (its CPU is reported too)."""
    run_dir = Path(os.environ.get("LT_RUN_DIR") or Path(__file__).resolve().parents[2] / ".run")
    try:
        pid = int((run_dir / "kafka" / "kafka.pid").read_text().split()[0])
        _cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None
    return pid


class _CpuSince:
    """CPU time of the workers (all threads, and their decrypting processes) and of the local broker,
    if it runs, from now on."""

    def __init__(self, workers: list[subprocess.Popen[bytes]], broker: int | None) -> None:
        self.workers, self.broker = workers, broker
        self.start = self._seconds()

    def _seconds(self) -> tuple[float, float]:
        return sum(_family_cpu_seconds(w.pid) for w in self.workers), _cpu_seconds(self.broker) if self.broker else 0.0

    def per_report_us(self, reports: int) -> tuple[float, float]:
        """Workers' and broker's µs per report since creation; the broker's is NaN without one."""
        (workers, broker), (workers_0, broker_0) = self._seconds(), self.start
        n = max(reports, 1)
        return (workers - workers_0) / n * 1e6, (broker - broker_0) / n * 1e6 if self.broker else float("nan")


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class _Visibility(threading.Thread):
    """Records when each report's feedback becomes visible to a read_committed consumer, and when
    the worker wrote it (the record's create time, taken by the worker's producer).

    Feedback commits in the same transaction as the report's lt.reports and exchange records, so
    it becomes visible at the same moment; its key is the report_id, so nothing is decoded here
    (the measuring process should take as little CPU from the workers as it can).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({**settings.kafka.client_config(), "group.id": f"lat-{uuid.uuid4().hex[:6]}",
                                  "auto.offset.reset": "latest", "isolation.level": "read_committed",
                                  "topic.metadata.refresh.interval.ms": 1000})  # fmt: skip
        self.consumer.subscribe(["^" + re.escape(settings.topics.feedback_prefix) + ".+"])
        self.seen: dict[bytes, tuple[float, float]] = {}  # report_id → (visible, written), Unix s
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
                key = m.key()
                if m.error() is None and key is not None:
                    self.seen[key] = (now, m.timestamp()[1] / 1000)
        self.consumer.close()


class Latencies(NamedTuple):
    p50_ms: float
    p99_ms: float
    p99_written_ms: float
    fed: int


def latency_figures(created: dict[bytes, float], seen: dict[bytes, tuple[float, float]], fed: int) -> Latencies:
    """p50 and p99 from creation to visibility, and p99 from creation to the worker's write, over
    the reports both fed (`created`: report_id → Unix s) and seen (report_id → (visible, written))."""
    both = [(seen[k][0] - t, seen[k][1] - t) for k, t in created.items() if k in seen]
    if not both:
        return Latencies(float("nan"), float("nan"), float("nan"), fed)
    visible = sorted(v * 1000 for v, _ in both)
    written = sorted(w * 1000 for _, w in both)
    return Latencies(_quantile(visible, 0.5), _quantile(visible, 0.99), _quantile(written, 0.99), fed)


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def write_latency_log(path: Path, created: dict[bytes, float], seen: dict[bytes, tuple[float, float]]) -> None:
    """One CSV line per report seen, in creation order: created (Unix s), ms until the worker
    wrote it, ms until visible. For finding out whether a p99 is a plateau or a spike."""
    with path.open("w") as out:
        out.write("created_unix_s,written_ms,visible_ms\n")
        for key, t in sorted(created.items(), key=lambda item: item[1]):
            if key in seen:
                visible, written = seen[key]
                out.write(f"{t:.4f},{(written - t) * 1000:.1f},{(visible - t) * 1000:.1f}\n")


def _latency(settings: Settings, ingress: Path, rate: float, log: Path | None = None) -> Latencies:
    """Latencies of the reports in `ingress` fed at `rate` (each report's in `log` if given)."""
    # Everything the feeder needs is prepared before the clock starts.
    records = [(settings.topics.ingress(reporter), value, key, decode(value)[1]["report_id"].encode())
               for reporter, key, value in _ingress(ingress)]  # fmt: skip
    # Configured like the reporter SDK's producer (pipeline.reporter), and paced in steps of a
    # few milliseconds: a request and a sleep per record would measure the harness, not the
    # pipeline. Creation time is taken when a record is produced, so lingering counts as latency.
    # Created before the wait below: an idempotent producer's first records wait for its producer
    # ID, which librdkafka asks for ~500 ms after the producer is created (measured: first delivery
    # 503 ms after creation, 1 ms once connected). Those reports would reach the workers as one
    # burst, and draining it took 1-4.5 s at half the maximum rate, most of the p99. A reporter's
    # producer is long-lived; its start-up is not the pipeline's latency.
    producer = Producer({**settings.kafka.client_config(), **PRODUCER_DEFAULTS})
    producer.list_topics(timeout=10)
    visibility = _Visibility(settings)
    visibility.start()
    time.sleep(3.0)  # let the consumer join, and the producer get its ID, before anything is fed
    created: dict[bytes, float] = {}

    def delivered(report_id: bytes) -> Callable[[KafkaError | None, Message], None]:
        def record_creation(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                created[report_id] = msg.timestamp()[1] / 1000  # the producer's create time

        return record_creation

    start = time.monotonic()
    for count, (topic, value, key, report_id) in enumerate(records, 1):
        producer.produce(topic, value, key=key, on_delivery=delivered(report_id))
        producer.poll(0)
        ahead = count / rate - (time.monotonic() - start)
        if ahead > 0.002:
            time.sleep(ahead)
    producer.flush(30)
    deadline = time.monotonic() + 60
    while len(visibility.seen) < len(created) and time.monotonic() < deadline:
        time.sleep(0.2)
    visibility.running = False
    visibility.join(5)
    if log is not None:
        write_latency_log(log, created, visibility.seen)
    return latency_figures(created, visibility.seen, len(records))


def measure_suite(suite: str, workers: int, records: int, latency_records: int, workdir: Path,
                  latency_rate: float | None = None, latency_log: Path | None = None) -> PipelineFigures:  # fmt: skip
    market = workdir / f"{suite}-{workers}"
    warmup = min(WARMUP_RECORDS, records // 2)
    # One market (one keyring) for every phase: warm-up, throughput, latency, in event-time order.
    summary = generate_market(market, reports=warmup + records + latency_records, seed=5, defect_rate=0.0,
                              suites=(suite,))  # fmt: skip
    lines = (market / "ingress.jsonl").read_text().splitlines(keepends=True)
    (market / "warmup.jsonl").write_text("".join(lines[:warmup]))
    (market / "throughput.jsonl").write_text("".join(lines[warmup : warmup + records]))
    (market / "latency.jsonl").write_text("".join(lines[warmup + records :]))
    base = Settings.from_env()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env = localrun.isolated_env(prefix, base.kafka.bootstrap)
    env.update(LT_PIPELINE_KEYRING=summary["keyring"], LT_PIPELINE_FINGERPRINT_KEY=uuid.uuid4().hex)
    os.environ.update(env)
    settings = Settings.from_env()
    client = settings.kafka.client_config()
    admin = AdminClient(client)
    reporters = sorted({reporter for reporter, _, _ in _ingress(market / "ingress.jsonl")})
    ingress_topics = [settings.topics.ingress(r) for r in reporters]
    ensure_topics(admin, settings, [*output_topics(settings), *(ingress_topic(settings, r) for r in reporters)])
    refstore.publish_directory(settings, market / "reference")

    log = open(workdir / f"{suite}-{workers}-workers.log", "ab")  # noqa: SIM115 - handed to the workers
    procs = [localrun.start_worker(env, f"bench-{suite}-{i}", log) for i in range(workers)]
    committed = _Committed(client, settings.kafka.group, ingress_topics)
    try:
        # All N workers share the partitions before the backlog arrives; the rate is measured
        # from the end of feeding, so the feeder's own work is left out too.
        localrun.wait_group_stable(admin, settings.kafka.group, workers)
        # Untimed: the broker's JIT compiles its produce, fetch and transaction paths during the
        # first tens of thousands of records (on a fresh broker, more CPU than the requests
        # themselves), and the workers fill their caches and sharing state.
        warmed = localrun.feed(settings, market / "warmup.jsonl")
        _wait_committed(committed, warmed, procs, log.name)
        total = warmed + localrun.feed(settings, market / "throughput.jsonl")
        first_seen, first_count = time.perf_counter(), committed.total()
        throughput_cpu = _CpuSince(procs, _local_broker_pid())
        _wait_committed(committed, total, procs, log.name)
        pipeline_rate = (total - first_count) / max(time.perf_counter() - first_seen, 1e-9)
        cpu_us, broker_us = throughput_cpu.per_report_us(total - first_count)
        rate = latency_rate or pipeline_rate / 2
        latency_cpu = _CpuSince(procs, throughput_cpu.broker)
        latencies = _latency(settings, market / "latency.jsonl", rate, latency_log)
        latency_cpu_us, latency_broker_us = latency_cpu.per_report_us(latencies.fed)
        rss = max(sum(_peak_rss_mb(member) for member in _family(w.pid)) for w in procs)
    finally:
        committed.close()
        for worker in procs:
            worker.terminate()
        for worker in procs:
            worker.wait(30)
        log.close()
    try:
        # The floors, with the workers gone: the same ingress bytes, the same parallelism.
        kafka_floor = _kafka_floor(settings, ingress_topics, settings.pipeline.batch_size, workers)
        crypto_floor = _crypto_floor(summary["keyring"], market / "throughput.jsonl", workers)
    finally:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                future.result()
    label = {"x25519": "X25519-HKDF-SHA256/AES-256-GCM", "rsa": "RSA2048-OAEP-SHA256/AES-256-GCM",
             "sm4": "SM4-GCM"}[suite]  # fmt: skip
    return PipelineFigures(label, workers, total - first_count, pipeline_rate, kafka_floor, crypto_floor, rate,
                           latencies.p50_ms, latencies.p99_ms, latencies.p99_written_ms, rss, cpu_us, broker_us,
                           latency_cpu_us, latency_broker_us)  # fmt: skip


def run(records: dict[str, int], latency_records: int, workers: list[int], repeat: int = 1,
        latency_rate: float | None = None, latency_logs: Path | None = None) -> list[PipelineFigures]:  # fmt: skip
    """Every suite at every worker count, `repeat` times: round by round, so that a slow spell of
    the machine falls on every configuration rather than on all runs of one. The latency phase is
    fed at `latency_rate` if given, else at half of each run's measured rate; with `latency_logs`
    (a directory) every run's per-report latencies go to a CSV file there."""
    figures: list[PipelineFigures] = []
    with tempfile.TemporaryDirectory(prefix="lt-bench-pipeline-") as tmp:
        for r in range(repeat):
            workdir = Path(tmp) / f"round-{r}"
            workdir.mkdir()
            for suite, count in records.items():
                for n in workers:
                    log = None if latency_logs is None else latency_logs / f"{suite}-{n}w-round{r + 1}.csv"
                    figures.append(measure_suite(suite, n, count, latency_records, workdir, latency_rate, log))
    return figures


def _by_configuration(figures: list[PipelineFigures]) -> dict[tuple[str, int], list[PipelineFigures]]:
    runs: dict[tuple[str, int], list[PipelineFigures]] = {}
    for f in figures:
        runs.setdefault((f.suite, f.workers), []).append(f)
    return runs


def medians(figures: list[PipelineFigures]) -> list[PipelineFigures]:
    """One row per configuration (suite, workers): the median of each figure over its runs."""
    numeric = [f.name for f in dataclasses.fields(PipelineFigures) if f.name not in ("suite", "workers")]
    return [
        PipelineFigures(suite, workers, **{name: statistics.median(getattr(f, name) for f in runs) for name in numeric})
        for (suite, workers), runs in _by_configuration(figures).items()
    ]


def report(figures: list[PipelineFigures]) -> str:
    """The table of every run; with several runs per configuration, their medians and ranges too."""
    rows = _table(figures)
    summary = medians(figures)
    if len(summary) < len(figures):
        heading = "median per configuration over its runs (each figure's median; ratios of the medians):"
        rows += ["", heading, *_table(summary)[1:], ""]
        for (suite, workers), group in _by_configuration(figures).items():
            rates = [f.pipeline_per_s for f in group]
            p99s = [f.p99_ms for f in group]
            rows.append(f"{suite}, {workers} worker(s), {len(group)} runs: {min(rates):,.0f}–{max(rates):,.0f} "
                        f"reports/s, p99 {min(p99s):,.0f}–{max(p99s):,.0f} ms")  # fmt: skip
    rows += _LEGEND
    return "\n".join(rows)


def _table(figures: list[PipelineFigures]) -> list[str]:
    rows = [
        f"{'suite':<33}{'workers':>8}{'records':>8}{'pipeline/s':>11}{'kafka floor':>12}{'ratio':>7}"
        f"{'crypto floor':>13}{'ratio':>7}{'@ rate/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'wr p99':>8}{'RSS MB':>8}"
        f"{'CPU µs':>8}{'broker µs':>10}{'lat CPU µs':>11}{'lat broker µs':>14}"
    ]
    for f in figures:
        rows.append(
            f"{f.suite:<33}{f.workers:>8}{f.records:>8.0f}{f.pipeline_per_s:>11,.0f}{f.kafka_floor_per_s:>12,.0f}"
            f"{f.pipeline_per_s / f.kafka_floor_per_s:>7.0%}{f.crypto_floor_per_s:>13,.0f}"
            f"{f.pipeline_per_s / f.crypto_floor_per_s:>7.0%}{f.latency_rate:>9,.0f}{f.p50_ms:>8.1f}{f.p99_ms:>8.1f}"
            f"{f.p99_written_ms:>8.1f}"
            f"{f.worker_peak_rss_mb:>8.0f}{f.worker_cpu_us:>8.0f}{f.broker_cpu_us:>10.0f}"
            f"{f.latency_worker_cpu_us:>11.0f}{f.latency_broker_cpu_us:>14.0f}"
        )
    return rows


_LEGEND = [
    "floors in the same run, at the same parallelism (N processes); records = reports measured: the backlog",
    "left when feeding ended, N workers sharing the partitions; latency = ingress create → visible on",
    "lt.reports at the rate in @ rate/s (half the measured rate unless --latency-rate is given); wr p99 =",
    "p99 of ingress create → the worker's write of its outputs (the rest is the transaction and commit);",
    "RSS = peak per worker (with its decrypting processes); CPU µs = the workers' CPU time (all threads",
    "and decrypting processes) per report; broker µs = the local broker's CPU time per report over the",
    "same phase (infra/kafka/start's broker only); lat CPU µs, lat broker µs = the same two per report",
    "fed over the latency phase (the broker also takes the feed)",
]
