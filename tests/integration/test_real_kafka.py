"""The real broker (Kafka 3.9, KRaft) read and written by both Python clients.

confluent-kafka (librdkafka) writes what aiokafka (faust's client) reads and the reverse,
including consumer-group join and offset commit; transactions hide aborted records from
read_committed consumers; a compacted topic keeps only the newest value per key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Record = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]


def _records(n: int, tag: str) -> list[Record]:
    # 37 keys so every partition of a 3-partition topic gets several keys and several records per key.
    return [
        (f"key-{i % 37}".encode(), f"{tag}-{i}".encode(), (("seq", str(i).encode()), ("tag", tag.encode())))
        for i in range(n)
    ]


def _confluent_produce(bootstrap: str, topic: str, records: list[Record], **extra: str) -> None:
    # murmur2_random is the Java client's (and aiokafka's) partitioner; librdkafka's default differs.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True, **extra}
    )
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=list(headers))
    assert producer.flush(30) == 0, "confluent producer could not deliver everything in 30 s"


def _confluent_read(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    isolation: str = "read_uncommitted",
    expect: int | None = None,
    timeout: float = 30.0,
) -> list[tuple[int, int, Record]]:
    """(partition, offset, record) of every partition from the beginning to its end
    (or until `expect` records arrived)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}",  # required by librdkafka; assign() never joins the group
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out: list[tuple[int, int, Record]] = []
    at_eof: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    if expect is None and len(at_eof) == partitions:
                        break
                    continue
                raise AssertionError(f"consumer error: {msg.error()}")
            at_eof.discard(msg.partition())
            out.append((msg.partition(), msg.offset(), (msg.key(), msg.value(), tuple(msg.headers() or ()))))
            if expect is not None and len(out) >= expect:
                break
    finally:
        consumer.close()
    return out


def _per_key(records: list[Record]) -> dict[bytes | None, list[bytes | None]]:
    by_key: dict[bytes | None, list[bytes | None]] = {}
    for key, value, _ in records:
        by_key.setdefault(key, []).append(value)
    return by_key


async def _aiokafka_read(
    bootstrap: str,
    topic: str,
    expect: int,
    *,
    group_id: str | None = None,
    isolation: str = "read_uncommitted",
    linger_s: float = 0.0,
    timeout: float = 30.0,
) -> list[tuple[int, Record]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    await consumer.start()
    out: list[tuple[int, Record]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batches.items():
                out.extend((tp.partition, (m.key, m.value, tuple(m.headers))) for m in msgs)
        # Give records beyond the expected ones a chance to show up, so "exactly" means exactly.
        end = time.monotonic() + linger_s
        while time.monotonic() < end:
            for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
                out.extend((tp.partition, (m.key, m.value, tuple(m.headers))) for m in msgs)
        if group_id is not None:
            await consumer.commit()
    finally:
        await consumer.stop()
    return out


def test_confluent_writes_aiokafka_reads_in_a_group(
    kafka_bootstrap: str, kafka_admin: AdminClient, new_topic: Callable[..., str]
) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions

    topic = new_topic(partitions=3)
    sent = _records(600, "c2a")
    _confluent_produce(kafka_bootstrap, topic, sent)

    group = f"group-{topic}"
    got = asyncio.run(_aiokafka_read(kafka_bootstrap, topic, len(sent), group_id=group))

    assert sorted(r for _, r in got) == sorted(sent)
    assert _per_key([r for _, r in got]) == _per_key(sent), "per-key order must survive"
    partitioner = DefaultPartitioner()
    for partition, (key, _, _) in got:
        assert partition == partitioner(key, [0, 1, 2], [0, 1, 2]), "librdkafka murmur2 != aiokafka murmur2"

    # aiokafka's commit is visible through librdkafka's admin API.
    result = kafka_admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    committed = {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == topic}
    per_partition = {p: sum(1 for q, _ in got if q == p) for p in range(3)}
    assert committed == per_partition


def test_aiokafka_writes_confluent_reads(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=3)
    sent = _records(600, "a2c")

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v, headers=list(h)) for k, v, h in sent]
            await producer.flush()
            for fut in futures:
                await fut
        finally:
            await producer.stop()

    asyncio.run(produce())
    got = _confluent_read(kafka_bootstrap, topic, 3)

    assert sorted(r for _, _, r in got) == sorted(sent)
    assert _per_key([r for _, _, r in got]) == _per_key(sent)
    partitioner = DefaultPartitioner()
    for partition, _, (key, _, _) in got:
        assert partition == partitioner(key, [0, 1, 2], [0, 1, 2])


def test_aborted_transaction_is_invisible_to_read_committed(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=1)
    aborted = [(b"k", f"aborted-{i}".encode(), ()) for i in range(20)]
    committed = [(b"k", f"committed-{i}".encode(), ()) for i in range(30)]

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for k, v, _ in aborted:
        producer.produce(topic, key=k, value=v)
    producer.flush(30)  # the aborted records really reach the log before the abort
    producer.abort_transaction(30)
    producer.begin_transaction()
    for k, v, _ in committed:
        producer.produce(topic, key=k, value=v)
    producer.commit_transaction(30)

    def values(rows: list[tuple[int, int, Record]]) -> list[bytes | None]:
        return [value for *_, (_, value, _) in rows]

    everything = _confluent_read(kafka_bootstrap, topic, 1, isolation="read_uncommitted")
    assert values(everything) == [v for _, v, _ in aborted + committed], "aborted records were never written"

    by_librdkafka = _confluent_read(kafka_bootstrap, topic, 1, isolation="read_committed")
    assert values(by_librdkafka) == [v for _, v, _ in committed]

    by_aiokafka = asyncio.run(
        _aiokafka_read(kafka_bootstrap, topic, len(committed), isolation="read_committed", linger_s=1.0)
    )
    assert [value for _, (_, value, _) in by_aiokafka] == [v for _, v, _ in committed]


def test_compacted_topic_keeps_the_latest_value_per_key(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic(
        partitions=1,
        config={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "100",
        },
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    offset_of: dict[bytes, int] = {}  # key -> offset of its newest value
    delivered: list[int] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        delivered.append(msg.offset())
        offset_of[msg.key()] = max(offset_of.get(msg.key(), -1), msg.offset())

    latest: dict[bytes, bytes] = {}
    # Each round lands in its own segment: a segment rolls on the first append after segment.ms.
    rounds = [range(10), range(10), range(5), range(3)]
    for n, keys in enumerate(rounds):
        for i in keys:
            key, value = f"ref-{i}".encode(), f"v{n}-of-{i}".encode()
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            latest[key] = value
        assert producer.flush(10) == 0
        time.sleep(0.3)
    # The cleaner never touches the active segment: one more record closes the last round's segment.
    producer.produce(topic, key=b"closer", value=b"closes-the-segment", on_delivery=on_delivery)
    latest[b"closer"] = b"closes-the-segment"
    assert producer.flush(10) == 0
    written = sum(len(r) for r in rounds) + 1
    # Everything was written (the cleaner may already be at work, so the log itself is no witness).
    assert sorted(delivered) == list(range(written))

    deadline = time.monotonic() + 60
    rows = _confluent_read(kafka_bootstrap, topic, 1)
    while len(rows) != len(latest) and time.monotonic() < deadline:
        time.sleep(1.0)
        rows = _confluent_read(kafka_bootstrap, topic, 1)
    assert len(rows) == len(latest), f"cleaner did not compact within 60 s: {len(rows)} of {written} records left"
    assert {key: value for _, _, (key, value, _) in rows} == latest
    assert sorted(offset for _, offset, _ in rows) == sorted(offset_of.values()), "survivors are the newest writes"
