"""Read output topics back to their end (read_committed): for the demo summary and the tests.

`read_all` assigns every partition of the named topics from the beginning and reads
until each partition reaches its high watermark, decoding Avro single-object values.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline import schemas


def _consumer(client: Mapping[str, Any], committed_only: bool = True) -> Consumer:
    return Consumer({
        **client,
        "group.id": f"lookthrough-readback-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
    })


def topics_matching(client: Mapping[str, Any], prefix: str) -> list[str]:
    consumer = _consumer(client)
    try:
        return sorted(t for t in consumer.list_topics(timeout=10).topics if t.startswith(prefix))
    finally:
        consumer.close()


def end_offsets(client: Mapping[str, Any], topics: Iterable[str]) -> int:
    """Sum of high watermarks (for a read_committed consumer: up to the last stable offset)."""
    return sum(high_watermarks(client, topics).values())


def high_watermarks(client: Mapping[str, Any], topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) → high watermark (read_committed: the last stable offset) of existing topics."""
    consumer = _consumer(client)
    try:
        ends = {}
        metadata = consumer.list_topics(timeout=10).topics
        for topic in topics:
            if topic not in metadata:
                continue
            for partition in metadata[topic].partitions:
                _, ends[(topic, partition)] = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                                             timeout=10)  # fmt: skip
        return ends
    finally:
        consumer.close()


def committed_offsets(client: Mapping[str, Any], group: str,
                      partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:  # fmt: skip
    """(topic, partition) → the offset `group` has committed there (negative: none)."""
    consumer = Consumer({**client, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {(tp.topic, tp.partition): tp.offset for tp in committed}
    finally:
        consumer.close()


def read_all(
    client: Mapping[str, Any], topics: Iterable[str], *, decode: bool = True, timeout: float = 60.0
) -> dict[str, list[tuple[bytes | None, Any]]]:
    """Every committed record of `topics` as (key, value), value decoded unless `decode` is False."""
    return {
        topic: [(key, value) for _, key, value in records]
        for topic, records in read_placed(client, topics, decode=decode, timeout=timeout).items()
    }


def read_placed(
    client: Mapping[str, Any], topics: Iterable[str], *, decode: bool = True, timeout: float = 60.0,
    committed_only: bool = True,
) -> dict[str, list[tuple[int, bytes | None, Any]]]:
    """As `read_all`, each record as (partition, key, value); each partition's records in their order.
    With `committed_only` False, records of open and aborted transactions too."""
    consumer = _consumer(client, committed_only)
    out: dict[str, list[tuple[int, bytes | None, Any]]] = {}
    try:
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(t, p, OFFSET_BEGINNING) for t in topics if t in metadata for p in metadata[t].partitions
        ]
        ends = {}
        for tp in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            ends[(tp.topic, tp.partition)] = high
            out.setdefault(tp.topic, [])
        pending = {k for k, high in ends.items() if high > 0}
        consumer.assign(partitions)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if message.error():
                    continue
                raw = message.value()
                value: Any = schemas.decode(raw)[1] if decode and raw is not None else raw
                out[str(message.topic())].append((int(message.partition() or 0), message.key(), value))
            # Control records (transaction markers) take offsets, so compare positions, not counts.
            for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    pending.discard((tp.topic, tp.partition))
        if pending:
            raise TimeoutError(f"{len(pending)} partitions not read to their end within {timeout:.0f}s")
        return out
    finally:
        consumer.close()
