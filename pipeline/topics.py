"""Topic layout (profile §6) and idempotent creation through the Kafka admin API.

Names, partitions, replication and retention come from `Settings`; an existing topic is
left as it is. Exchange topics keep at least 30 days; reference topics are compacted.

A created topic is returned once every partition's leader serves it. The broker lists a new
partition in its metadata a moment before its replica manager has the partition; a produce
request in that moment fails with NOT_LEADER_OR_FOLLOWER, and librdkafka's idempotent producer
then takes the failed request's records for delivered when its next request to the partition
succeeds (the "implicit ack"; a record lost while acknowledged, seen in the tests).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.profile import limits
from pipeline.refdata import KINDS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def output_topics(settings: Settings, exchanges: Iterable[str] | None = None) -> list[TopicSpec]:
    """Every topic the pipeline writes, except per-reporter feedback (see `feedback_topic`)."""
    k, t = settings.kafka, settings.topics
    retention = str(max(k.exchange_retention_ms, 30 * 86_400_000))
    specs = [
        TopicSpec(t.reports, k.partitions, {}),
        TopicSpec(t.dlq, k.partitions, {}),
    ]
    specs += [
        TopicSpec(t.exchange(ex), k.partitions, {"retention.ms": retention})
        for ex in (exchanges if exchanges is not None else limits().exchanges)
    ]
    specs += [TopicSpec(t.ref(kind), 1, {"cleanup.policy": "compact"}) for kind in KINDS]
    specs.append(TopicSpec(t.sharing_state, k.partitions, {"cleanup.policy": "compact"}))
    return specs


def ingress_topic(settings: Settings, reporter: str) -> TopicSpec:
    return TopicSpec(settings.topics.ingress(reporter), settings.kafka.partitions, {})


def feedback_topic(settings: Settings, reporter: str) -> TopicSpec:
    k = settings.kafka
    return TopicSpec(settings.topics.feedback(reporter), k.feedback_partitions or k.partitions, {})


def ensure_topics(admin: AdminClient, settings: Settings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the missing topics; return the names created. Existing topics are not altered."""
    wanted = {spec.name: spec for spec in specs}
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [
        NewTopic(spec.name, num_partitions=spec.partitions,
                 replication_factor=settings.kafka.replication_factor, config=spec.config)
        for name, spec in wanted.items() if name not in existing
    ]  # fmt: skip
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent worker won the race
                raise ConfigError(f"cannot create topic {name}: {exc.args[0].str()}") from None
    # Topics a concurrent creator won may be as new as ours.
    wait_served(settings, [wanted[topic.topic] for topic in missing])
    return created


def wait_served(settings: Settings, specs: Iterable[TopicSpec], timeout: float = 30.0) -> None:
    """Until every partition of `specs` answers a ListOffsets request: its leader serves it."""
    pending = [TopicPartition(spec.name, p) for spec in specs for p in range(spec.partitions)]
    if not pending:
        return
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"lookthrough-topics-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while pending:
            waiting = []
            for tp in pending:
                try:
                    consumer.get_watermark_offsets(tp, timeout=max(0.1, deadline - time.monotonic()))
                except KafkaException as exc:
                    if time.monotonic() >= deadline:
                        raise ConfigError(f"partition {tp.topic}[{tp.partition}] is not served {timeout:.0f}s after "
                                          f"its creation: {exc.args[0].str()}") from None
                    waiting.append(tp)
            pending = waiting
            if pending:
                time.sleep(0.02)
    finally:
        consumer.close()
