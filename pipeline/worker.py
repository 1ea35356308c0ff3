"""The stream worker: ingress topics → stages → outputs, exactly once, with Kafka transactions.

Consume records from every `lt.ingress.*` topic (by pattern, so new reporters are picked up
without a restart), run `Processor.process` on each record, and produce all outputs plus the
consumed offsets in one transaction (KIP-447: offsets are committed with the consumer's group
metadata, so a zombie worker is fenced). A crash at any point either commits the whole
transaction or none of it; read_committed readers see each report once. Per-investor order
holds because the ingress key is the investor ID.

A transaction takes the records that arrive within `commit_interval_ms` of its first one (under
a backlog, those processed in that time), across as many consumed batches as that is, then
commits; a worker that has consumed only full batches for `backlog_after_ms` takes
`backlog_commit_interval_ms` instead, until a batch comes short (`transaction_span_ms`). The
broker's cost is per transaction and per partition written (one over eighteen partitions cost
the local broker 8-11 ms of CPU, measured), so committing as often as possible made a moderate
rate cost more per report than a backlog; Kafka Streams commits every 100 ms under exactly-once
for the same reason.

Outputs follow their input's partition: a record consumed from ingress partition p writes every
output to partition p mod n of its topic (n: that topic's partitions), the changelog of the
device-sharing state excepted (it is compacted, so keyed). One investor's records all come from
one ingress partition, so they keep their order on every output topic; and workers that own
different ingress partitions (the range assignor gives each worker the same partition numbers of
every ingress topic) write different output partitions. That keeps each transaction to a share of
the output partitions, which is what its flush, commit and broker cost grow with, and keeps one
worker's open transaction from holding back another's committed records from read_committed
readers (a partition's readers wait for every transaction open on it).

Transactions are pipelined: while one is being flushed and committed (a thread that mostly
waits on the broker), the next takes records. Its outputs are held until the previous commit
has succeeded, then it opens and every further output is produced as its record is processed.
An abort drops the transaction in progress too and rewinds to the committed offsets (what is
left of the consumed batch comes again from there), and a rebalance first commits what was
processed and drops a record consumed under the revoked assignment but not yet processed, so no
result outlives the assignment it was consumed under.

faust-streaming's own exactly-once mode has open upstream bugs around transactions and
rebalances, so the transaction boundaries are ours; see the README.
"""

from __future__ import annotations

import logging
import re
import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import ahead, metrics
from pipeline.config import PipelineSettings, Settings
from pipeline.crypto.lanes import KeyringSource
from pipeline.errors import ConfigError
from pipeline.process import Decrypting, Output, Processor
from pipeline.refdata import ReferenceData
from pipeline.refstore import ReferenceFollower
from pipeline.sharing import SharingFollower, SharingTable
from pipeline.topics import ensure_topics, feedback_topic, output_topics

log = logging.getLogger(__name__)
PARTITION_ANY = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner picks by key


@dataclass
class Batch:
    """One transaction's records: what its commit covers (the next offsets), tallies for the metrics,
    and the outputs held until the previous transaction has committed (None once this one is open)."""

    deadline: float  # perf_counter time at which it commits
    size: int = 0
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    records_in: Counter[str] = field(default_factory=Counter)
    records_out: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    held: list[tuple[Output, int]] | None = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def due(self) -> bool:
        """Whether its deadline has come: it takes no more records and commits."""
        return time.perf_counter() >= self.deadline


class Worker:
    def __init__(
        self, settings: Settings, keyring: Decrypting, keyring_source: KeyringSource | None = None
    ) -> None:
        self.settings = settings
        base = settings.kafka.client_config()
        self.admin = AdminClient(base)
        ensure_topics(self.admin, settings, output_topics(settings))
        self.ref = ReferenceData()
        self.ref_follower = ReferenceFollower(settings, self.ref)
        self.sharing = SharingTable.from_settings(settings.pipeline)
        self.sharing_follower = SharingFollower(settings, self.sharing)
        self.processor = Processor(settings, keyring, self.ref, self.sharing)
        p = settings.pipeline
        self.decrypter = ahead.decrypter(keyring, keyring_source, p.decrypt_processes, p.decrypt_threads)
        interval_ms = settings.pipeline.commit_interval_ms
        self.consumer = Consumer({
            **base,
            "group.id": settings.kafka.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 3000,
            # Each worker gets the same partition numbers of every ingress topic, so the output
            # partitions that follow them (see the module docstring) differ between workers.
            "partition.assignment.strategy": "range",
            "session.timeout.ms": settings.pipeline.session_timeout_ms,
            # A fetch returns once it has a megabyte (a backlog: at once) or has waited a quarter
            # of the commit interval, not as soon as the first record arrives: a record waits for
            # its transaction's commit anyway, and at a moderate rate the broker would otherwise
            # answer a fetch per produce request of the reporters.
            "fetch.min.bytes": 1_000_000,
            "fetch.wait.max.ms": max(1, interval_ms // 4),
        })
        self.producer = Producer({
            **base,
            "transactional.id": f"{settings.kafka.group}-{settings.pipeline.instance}",
            "enable.idempotence": True,
            "acks": "all",
            # Outputs are sent when a transaction commits (its flush sends them at once) or when a
            # batch fills: one request per partition and transaction, since the broker's cost is
            # per request and partition. So the linger is the longest a transaction takes records
            # (`_transaction_span_s`). Nobody reads them before the commit; streaming them out with
            # a 25 ms linger instead made commits no faster, measured.
            "linger.ms": max(interval_ms, settings.pipeline.backlog_commit_interval_ms),
            "compression.type": "lz4",
            "transaction.timeout.ms": 30_000,
            # Only failures are reported (no Python call per delivered record); the commit thread's
            # flush waits for every acknowledgement and any failure aborts the batch.
            "delivery.report.only.error": True,
            "on_delivery": self._delivered,
        })
        self.committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self.filling: Batch | None = None  # the transaction taking records, until its deadline
        self.in_flight: tuple[Future[None], Batch] | None = None  # the transaction committing
        self.transaction_open = False
        self.group_metadata: object | None = None  # see `_group_metadata`
        self.feedback_ready: set[str] = set()  # ingress topics whose reporter's feedback topic exists
        self.partition_counts: dict[str, int] = {}  # output topic → partitions (`_partition_count`)
        self.delivery_errors: list[str] = []
        self.counters = metrics.LabelCache()
        self.running = True
        self.processed = 0
        self.rewinds = 0  # times the consumer was rewound to the committed offsets (`_rewind`)
        self.revokes = 0  # times the group took this worker's partitions (`_on_revoke`)
        self.aborts_in_a_row = 0  # since the last commit that succeeded (`_recover` backs off on them)
        self.behind_since: float | None = None  # when the current run of full consumed batches began

    def stop(self, *_: object) -> None:
        self.running = False

    def start(self) -> None:
        """Load reference data and device-sharing state, then join the consumer group."""
        self.producer.init_transactions(30)
        for spec in output_topics(self.settings):
            if spec.config.get("cleanup.policy") != "compact":  # compacted topics stay keyed
                self._partition_count(spec.name)
        applied = self.ref_follower.catch_up()
        self.sharing_follower.poll(timeout=1.0)
        pattern = "^" + re.escape(self.settings.topics.ingress_prefix) + ".+"
        self.consumer.subscribe([pattern], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("worker started", extra={"reference_records": applied, "instance": self.settings.pipeline.instance})

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.start()
        p = self.settings.pipeline
        last_lag = 0.0
        try:
            while self.running:
                self.ref_follower.poll()
                self.sharing_follower.poll()
                # The previous transaction commits in the background while this one takes records.
                messages = self.next_batch(p.batch_size, p.batch_timeout_ms / 1000, self._until_due())
                if len(messages) < p.batch_size:
                    self._caught_up()
                elif self.behind_since is None:
                    self.behind_since = time.perf_counter()  # the first of a run of full batches
                if messages:
                    self.handle(messages)
                if self.filling is not None:
                    if self.filling.due():
                        self.close_transaction()
                    elif self.filling.held is not None and self._previous_committed():
                        self._open_held(self.filling)  # its outputs go out now, not all at the deadline
                elif self.in_flight is not None and self.in_flight[0].done():
                    self.finish_commit()  # idle: settle the last commit now, not with the next batch
                if time.monotonic() - last_lag > 5:
                    self.update_lag()
                    last_lag = time.monotonic()
            self.close_transaction()
            self.finish_commit()
        finally:
            self.close()

    def next_batch(self, size: int, linger_s: float, wait_s: float = 0.2) -> list[Message]:
        """Up to `size` records: wait at most `wait_s` for the first (briefly, so the loop stays
        responsive and a transaction commits on time), then at most `linger_s` for the batch to
        fill. A batch that is already queued returns at once; a lone record waits `linger_s`, not
        the whole batch timeout of a plain consume.
        """
        first = self.consumer.poll(wait_s)
        if first is None:
            return []
        if size == 1:
            return [first]
        revokes = self.revokes
        rest = self.consumer.consume(size - 1, timeout=linger_s)
        if self.revokes != revokes:
            # The group took the partitions back inside `consume`, after `first` had come under
            # them (`consume` drops the records it had fetched under them itself).
            # Processed now, `first` would be committed under the new assignment while its
            # partition's owner, this worker or another, reads it again from the offset committed
            # on revocation.
            log.info("a record consumed before a revocation dropped", extra={"records_after": len(rest)})
            return rest
        return [first, *rest]

    def _until_due(self) -> float:
        """How long the loop may wait for records: until the open transaction's deadline, at most 0.2 s."""
        if self.filling is None:
            return 0.2
        return min(0.2, max(0.0, self.filling.deadline - time.perf_counter()))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Create feedback topics of newly seen reporters before any of their records is processed."""
        log.info("partitions assigned", extra={"partitions": len(partitions)})
        self.group_metadata = None  # a new generation
        for topic in {tp.topic for tp in partitions}:
            try:
                self._ensure_feedback_topic(topic)
            except (KafkaException, ConfigError) as exc:  # tried again before the reporter's first record
                log.warning("feedback topic not ready", extra={"detail": str(exc)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what was processed before the partitions go to another worker."""
        log.info("partitions revoked", extra={"partitions": len(partitions)})
        self.revokes += 1
        self.close_transaction()
        self.finish_commit()
        self.group_metadata = None  # a new generation follows (lost partitions come here too: no on_lost)

    def _ensure_feedback_topic(self, ingress_topic: str) -> None:
        """Create the feedback topic of the reporter of `ingress_topic` unless done before."""
        if ingress_topic in self.feedback_ready:
            return
        spec = feedback_topic(self.settings, self.settings.topics.reporter_of(ingress_topic))
        ensure_topics(self.admin, self.settings, [spec])
        # Make the producer learn the new topic now, not in the middle of a transaction.
        self._partition_count(spec.name)
        self.feedback_ready.add(ingress_topic)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self.delivery_errors.append(error.name())

    def handle(self, messages: list[Message]) -> None:
        """Process consumed records into the open transaction, committing each transaction at its
        deadline, their RSA blobs decrypted ahead in the decrypting processes or threads (`pipeline.ahead`)."""
        lookahead = None
        if self.decrypter is not None:
            lookahead = ahead.Lookahead(self.processor, messages, self.decrypter, int(time.time() * 1000),
                                        ahead=2 * self.decrypter.width * ahead.CHUNK)  # fmt: skip
        position, rewinds = 0, self.rewinds
        # After a rewind the rest of `messages` comes again from the committed offsets; processed
        # now as well, a later record would commit past the rewound ones.
        while position < len(messages) and self.rewinds == rewinds:
            position = self._fill(messages, position, lookahead)
            if self.filling is not None and self.filling.due():
                self.close_transaction()

    def _fill(self, messages: list[Message], start: int, lookahead: ahead.Lookahead | None = None) -> int:
        """Process records from `start` into the open transaction (begun if none is) until its deadline.

        A transaction takes the records that arrive within `commit_interval_ms` of its first one;
        under a backlog, those the worker processes in that time, so no record waits for a whole
        batch. Returns where to go on: the end, the record after the deadline, or the end after an
        abort (the consumer was rewound; the rest comes again).
        """
        now_ms = int(time.time() * 1000)
        if self.filling is None:
            self.filling = Batch(deadline=time.perf_counter() + self._transaction_span_s())
        batch = self.filling
        position = start
        # Per record, so looked up once: a record's own stages take some 100 µs, and this loop's
        # bookkeeping was a tenth of that before.
        process, produce, counts = self.processor.process, self.producer.produce, self.partition_counts
        records_in, records_out, offsets = batch.records_in, batch.records_out, batch.offsets
        try:
            while position < len(messages):
                message = messages[position]
                position += 1
                batch.size += 1
                error = message.error()
                if error is not None:
                    # An error event, not a record: librdkafka keeps fetching unless it is fatal.
                    if error.fatal():
                        raise KafkaException(error)
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error", extra={"kafka_error": error.name()})
                    continue
                topic, partition, offset = _position(message)
                if topic not in self.feedback_ready:  # checked here: a method call per record costs
                    self._ensure_feedback_topic(topic)
                opened = lookahead.opened(position - 1) if lookahead is not None else None
                result = process(topic, partition, offset, message.key(), message.value(), now_ms, opened)
                records_in[topic] += 1
                if result.code is not None:
                    batch.rejects[result.code] += 1
                for warning in result.warnings:
                    batch.warnings[warning] += 1
                offsets[(topic, partition)] = offset + 1
                held = batch.held
                for out in result.outputs:
                    records_out[out.topic] += 1
                    # Outputs follow their ingress partition (module docstring).
                    out_partition = partition % (counts.get(out.topic) or self._partition_count(out.topic))
                    if held is not None:
                        held.append((out, out_partition))
                        continue
                    try:
                        produce(out.topic, out.value, key=out.key, partition=out_partition)
                    except (BufferError, KafkaException):  # a full queue, or a failed transaction:
                        self._produce(out.topic, out.key, out.value, out_partition)  # waits, or says which
                if held is not None and self._previous_committed() and not self._open(batch):
                    return len(messages)  # the previous transaction aborted; this one was rewound with it
                if batch.due():
                    break
        except KafkaException as exc:
            self._recover(exc)
            return len(messages)
        return position

    def close_transaction(self) -> None:
        """Leave the open transaction's commit in flight (opening it first if its outputs are held)."""
        batch, self.filling = self.filling, None
        if batch is None:
            return
        try:
            if batch.held is not None and not self._open(batch):
                return
            for key, value in self.sharing.drain_changes():  # value None: an idle key's tombstone
                self._produce(self.settings.topics.sharing_state, key.encode(), value)
        except KafkaException as exc:
            self._recover(exc)
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()]
        self.in_flight = (self.committer.submit(self._commit, offsets, self._group_metadata()), batch)

    def _group_metadata(self) -> object:
        """The consumer's group metadata (member and generation) that offsets commit with, asked once
        per assignment and after an abort. Why: librdkafka answers from its own main thread, so every
        call waits for that thread (up to 79 ms on a busy machine, measured), and the answer only
        changes when the group rebalances, which runs `_on_revoke` and `_on_assign` first (inside a
        consume call, so between batches)."""
        if self.group_metadata is None:
            self.group_metadata = self.consumer.consumer_group_metadata()
        return self.group_metadata

    def _previous_committed(self) -> bool:
        return self.in_flight is None or self.in_flight[0].done()

    def _open_held(self, batch: Batch) -> None:
        """Open `batch`'s transaction, whose outputs are held, once the previous one has committed."""
        try:
            self._open(batch)
        except KafkaException as exc:
            self._recover(exc)

    def _open(self, batch: Batch) -> bool:
        """Once the previous commit has ended, begin `batch`'s transaction and produce what was
        held for it; False if that commit failed (everything since was rewound)."""
        if not self.finish_commit():
            return False
        self.producer.begin_transaction()
        self.transaction_open = True
        held, batch.held = batch.held or [], None
        for out, partition in held:
            self._produce(out.topic, out.key, out.value, partition)
        return True

    def _partition_count(self, topic: str) -> int:
        """How many partitions `topic` has, as the producer's metadata says (read once per topic)."""
        deadline = time.monotonic() + 30
        while True:
            metadata = self.producer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is not None and metadata.error is None and metadata.partitions:
                self.partition_counts[topic] = len(metadata.partitions)
                return len(metadata.partitions)
            if time.monotonic() > deadline:  # retriable: the batch is aborted and consumed again
                raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC, f"no metadata for {topic}", retriable=True))
            time.sleep(0.1)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int = PARTITION_ANY) -> None:
        while True:
            try:
                # failures: `on_delivery` in the config
                self.producer.produce(topic, value, key=key, partition=partition)
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._STATE or not self.transaction_open:
                    raise
                # librdkafka takes no more records once a delivery of this transaction has failed
                # (before its report reaches `_delivered`): abort it, like a failed delivery.
                error = KafkaError(KafkaError._STATE, "transaction failed", txn_requires_abort=True)
                raise KafkaException(error) from exc

    def _commit(self, offsets: list[TopicPartition], metadata: object) -> None:
        # Every output must be acknowledged before the offsets commit with them: a record
        # that failed delivery aborts the whole batch instead of silently going missing. The
        # first failure ends the wait: librdkafka sends none of the transaction's other records
        # after it, and they would only time out, with the transaction (30 s).
        deadline = time.monotonic() + 60
        remaining = self.producer.flush(0.05)
        while remaining and not self.delivery_errors and time.monotonic() < deadline:
            remaining = self.producer.flush(0.05)
        if self.delivery_errors or remaining:
            errors, self.delivery_errors = self.delivery_errors, []
            reason = errors[0] if errors else f"{remaining} records unacknowledged"
            raise KafkaException(KafkaError(KafkaError._FAIL, f"delivery failed: {reason}", txn_requires_abort=True))
        if offsets:
            self.producer.send_offsets_to_transaction(offsets, metadata)
        self.producer.commit_transaction()
        self.transaction_open = False

    def finish_commit(self) -> bool:
        """Wait for the commit in flight; False if it failed (the batches since were rewound)."""
        in_flight, self.in_flight = self.in_flight, None
        if in_flight is None:
            return True
        future, batch = in_flight
        try:
            future.result()
        except KafkaException as exc:
            self._recover(exc)
            return False
        self.sharing.confirm_changes()
        self.aborts_in_a_row = 0
        for counter, tally in ((metrics.RECORDS_IN, batch.records_in), (metrics.RECORDS_OUT, batch.records_out),
                               (metrics.REJECTS, batch.rejects), (metrics.WARNINGS, batch.warnings)):  # fmt: skip
            for label, count in tally.items():
                self.counters.inc(counter, label, count)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        metrics.BATCH_SIZE.observe(batch.size)
        self.processed += batch.size
        return True

    def _recover(self, exc: KafkaException) -> None:
        """Abort the batch and rewind to the last committed offsets, or die if fenced."""
        error = exc.args[0]
        if error.fatal() or (not error.txn_requires_abort() and not error.retriable()):
            log.error("fatal transaction error; exiting", extra={"kafka_error": error.name()})
            raise exc
        log.warning("aborting batch", extra={"kafka_error": error.name()})
        self.filling = None  # rewound with the rest
        # A commit still in flight ends first: aborting under it would race its commit, and the
        # offsets rewound to must include it if it succeeds. If it fails, that recovery rewinds.
        if self.in_flight is not None and not self.finish_commit():
            return
        if self.transaction_open:
            self.producer.abort_transaction(30)
            self.transaction_open = False
        self.delivery_errors.clear()
        self.sharing.discard_changes()
        self.group_metadata = None  # asked again: a refused offset commit may mean a generation we missed
        self._rewind()
        # A failure that lasts (a topic refusing writes, a broker away) would otherwise make a tight
        # loop of transactions aborted as soon as they are tried; one abort alone is retried at once.
        self.aborts_in_a_row += 1
        pause = abort_backoff(self.aborts_in_a_row)
        if pause > 0:
            log.warning("backing off after aborts", extra={"aborts_in_a_row": self.aborts_in_a_row, "seconds": pause})
            time.sleep(pause)

    def _rewind(self) -> None:
        """Seek every assigned partition to its committed offset: what was consumed since comes again."""
        self.rewinds += 1
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, timeout=10):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _transaction_span_s(self) -> float:
        """How long a transaction opening now takes records (`transaction_span_ms`)."""
        behind_ms = 0.0 if self.behind_since is None else (time.perf_counter() - self.behind_since) * 1000
        return transaction_span_ms(self.settings.pipeline, behind_ms) / 1000

    def _caught_up(self) -> None:
        """A consumed batch came short of full: nothing more was waiting. A transaction that took the
        backlog interval now ends at the commit interval, as one opened now would."""
        self.behind_since = None
        if self.filling is not None:
            interval_s = self.settings.pipeline.commit_interval_ms / 1000
            self.filling.deadline = min(self.filling.deadline, self.filling.started + interval_s)

    def update_lag(self) -> None:
        assignment = self.consumer.assignment()
        if not assignment:
            return
        for tp in self.consumer.position(assignment):
            _, high = self.consumer.get_watermark_offsets(tp, timeout=1, cached=True)
            if tp.offset >= 0 and high >= 0:
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))

    def close(self) -> None:
        log.info("worker stopping", extra={"processed": self.processed})
        self.filling = None  # left uncommitted only after an error: consumed again by the next owner
        self.committer.shutdown(wait=True)  # a commit still in flight ends (either way) before we leave
        if self.decrypter is not None:
            self.decrypter.close()  # decrypting ahead of an end: unneeded
        self.consumer.close()
        self.ref_follower.close()
        self.sharing_follower.close()
        self.producer.flush(10)


def transaction_span_ms(settings: PipelineSettings, behind_ms: float) -> int:
    """How long a transaction takes records when the worker has consumed only full batches for
    `behind_ms`: the commit interval, or from `backlog_after_ms` on, the backlog interval.

    Why: the local broker's CPU is per transaction and per produce request (one transaction over
    eighteen partitions cost it 8-11 ms), and under a backlog that comes out of the workers' share
    of the machine. A record that has waited in a backlog loses little to its transaction closing
    a few hundred milliseconds later. At a moderate rate a worker catches up (a batch that is not
    full) every transaction or so, so latency keeps the commit interval; and a backlog
    transaction ends at the commit interval as soon as the worker catches up (`_caught_up`).
    """
    if settings.backlog_commit_interval_ms > settings.commit_interval_ms and behind_ms >= settings.backlog_after_ms:
        return settings.backlog_commit_interval_ms
    return settings.commit_interval_ms


def abort_backoff(aborts_in_a_row: int) -> float:
    """Seconds to pause after the n-th abort in a row: none after the first, then 0.1 s doubling up to 5 s."""
    if aborts_in_a_row <= 1:
        return 0.0
    return min(0.1 * 2.0 ** min(aborts_in_a_row - 2, 6), 5.0)


def _position(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (non-error) message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaException(KafkaError(KafkaError._BAD_MSG, "consumed message without a position"))
    return topic, partition, offset
