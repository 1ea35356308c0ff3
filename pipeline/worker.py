"""The stream worker: ingress topics → stages → outputs, exactly once, with Kafka transactions.

Consume a batch from every `lt.ingress.*` topic (by pattern, so new reporters are picked
up without a restart), run `Processor.process` on each record, and produce all outputs
plus the consumed offsets in one transaction (KIP-447: offsets are committed with the
consumer's group metadata, so a zombie worker is fenced). A crash at any point either
commits the whole batch or none of it; read_committed readers see each report once.
Per-investor order holds because the ingress key is the investor ID.

faust-streaming's own exactly-once mode has open upstream bugs around transactions and
rebalances, so the transaction boundaries are ours; see the README.
"""

from __future__ import annotations

import logging
import re
import signal
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import metrics
from pipeline.config import Settings
from pipeline.process import Decrypting, Processor
from pipeline.refdata import ReferenceData
from pipeline.refstore import ReferenceFollower
from pipeline.sharing import SharingFollower, SharingTable
from pipeline.topics import ensure_topics, feedback_topic, output_topics

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings, keyring: Decrypting) -> None:
        self.settings = settings
        base = settings.kafka.client_config()
        self.admin = AdminClient(base)
        ensure_topics(self.admin, settings, output_topics(settings))
        self.ref = ReferenceData()
        self.ref_follower = ReferenceFollower(settings, self.ref)
        self.sharing = SharingTable()
        self.sharing_follower = SharingFollower(settings, self.sharing)
        self.processor = Processor(settings, keyring, self.ref, self.sharing)
        self.consumer = Consumer({
            **base,
            "group.id": settings.kafka.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 3000,
        })
        self.producer = Producer({
            **base,
            "transactional.id": f"{settings.kafka.group}-{settings.pipeline.instance}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "transaction.timeout.ms": 30_000,
            "on_delivery": self._delivered,
        })
        self.known_reporters: set[str] = set()
        self.delivery_errors: list[str] = []
        self.counters = metrics.LabelCache()
        self.running = True
        self.processed = 0

    def stop(self, *_: object) -> None:
        self.running = False

    def start(self) -> None:
        """Load reference data and device-sharing state, then join the consumer group."""
        self.producer.init_transactions(30)
        applied = self.ref_follower.catch_up()
        self.sharing_follower.poll(timeout=1.0)
        pattern = "^" + re.escape(self.settings.topics.ingress_prefix) + ".+"
        self.consumer.subscribe([pattern], on_assign=self._on_assign)
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
                messages = self.consumer.consume(p.batch_size, timeout=p.batch_timeout_ms / 1000)
                if messages:
                    self.process_batch(messages)
                if time.monotonic() - last_lag > 5:
                    self.update_lag()
                    last_lag = time.monotonic()
        finally:
            self.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Create feedback topics of newly seen reporters before any of their records is processed."""
        for reporter in {self.settings.topics.reporter_of(tp.topic) for tp in partitions}:
            self._ensure_feedback_topic(reporter)

    def _ensure_feedback_topic(self, reporter: str) -> None:
        if reporter in self.known_reporters:
            return
        spec = feedback_topic(self.settings, reporter)
        ensure_topics(self.admin, self.settings, [spec])
        # Make the producer learn the new topic now, not in the middle of a transaction.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = self.producer.list_topics(spec.name, timeout=5).topics.get(spec.name)
            if topic is not None and topic.error is None and topic.partitions:
                break
            time.sleep(0.1)
        self.known_reporters.add(reporter)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self.delivery_errors.append(error.name())

    def process_batch(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        offsets: dict[tuple[str, int], int] = {}
        self.producer.begin_transaction()
        try:
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    continue
                topic, partition, offset = _position(message)
                self._process_one(message, topic, partition, offset, now_ms)
                offsets[(topic, partition)] = offset + 1
            for key, value in self.sharing.drain_changes():
                self._produce(self.settings.topics.sharing_state, key.encode(), value)
            # Every output must be acknowledged before the offsets commit with them: a record
            # that failed delivery aborts the whole batch instead of silently going missing.
            self.producer.flush(60)
            if self.delivery_errors:
                errors, self.delivery_errors = self.delivery_errors, []
                failure = KafkaError(KafkaError._FAIL, f"delivery failed: {errors[0]}", txn_requires_abort=True)
                raise KafkaException(failure)
            self.producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                self.consumer.consumer_group_metadata(),
            )
            self.producer.commit_transaction()
            self.sharing.confirm_changes()
        except KafkaException as exc:
            self._recover(exc)
            return
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(messages))
        self.processed += len(messages)

    def _process_one(self, message: Message, topic: str, partition: int, offset: int, now_ms: int) -> None:
        reporter = self.settings.topics.reporter_of(topic)
        self._ensure_feedback_topic(reporter)
        self.counters.inc(metrics.RECORDS_IN, topic)
        result = self.processor.process(topic, partition, offset, message.key(), message.value(), now_ms)
        if result.code is not None:
            self.counters.inc(metrics.REJECTS, result.code)
        for warning in result.warnings:
            self.counters.inc(metrics.WARNINGS, warning)
        for out in result.outputs:
            self._produce(out.topic, out.key, out.value)
            self.counters.inc(metrics.RECORDS_OUT, out.topic)

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key=key)  # delivery reports: `on_delivery` in the config
                return
            except BufferError:
                self.producer.poll(0.05)

    def _recover(self, exc: KafkaException) -> None:
        """Abort the batch and rewind to the last committed offsets, or die if fenced."""
        error = exc.args[0]
        if error.fatal() or (not error.txn_requires_abort() and not error.retriable()):
            log.error("fatal transaction error; exiting", extra={"kafka_error": error.name()})
            raise exc
        log.warning("aborting batch", extra={"kafka_error": error.name()})
        self.producer.abort_transaction(30)
        self.delivery_errors.clear()
        self.sharing.discard_changes()
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, timeout=10):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

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
        self.consumer.close()
        self.ref_follower.close()
        self.sharing_follower.close()
        self.producer.flush(10)


def _position(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (non-error) message."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaException(KafkaError(KafkaError._BAD_MSG, "consumed message without a position"))
    return topic, partition, offset
