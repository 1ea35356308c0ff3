"""Topic creation against the real broker: a created topic is served before anyone writes to it.

A partition the broker lists but does not serve yet answers NOT_LEADER_OR_FOLLOWER; librdkafka's
idempotent producer can then acknowledge a record it never delivered (see `pipeline.topics`).
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import localrun, readback
from pipeline.config import Settings
from pipeline.topics import ensure_topics, ingress_topic

from .conftest import delete_topics


def test_every_partition_of_a_created_topic_is_served_at_once(kafka_bootstrap: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    prefix = f"t{uuid.uuid4().hex[:8]}."
    for key, value in {**localrun.isolated_env(prefix, kafka_bootstrap), "LT_KAFKA_PARTITIONS": "4"}.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    client = settings.kafka.client_config()
    admin = AdminClient(client)
    consumer = Consumer({**client, "group.id": f"{prefix}probe", "enable.auto.commit": False})
    try:
        for batch in range(5):
            specs = [ingress_topic(settings, f"R{batch}{n}") for n in range(6)]
            assert sorted(ensure_topics(admin, settings, specs)) == sorted(spec.name for spec in specs)
            for spec in specs:
                for partition in range(spec.partitions):
                    # Raises NOT_LEADER_FOR_PARTITION for a partition its leader does not serve yet.
                    low, high = consumer.get_watermark_offsets(TopicPartition(spec.name, partition), timeout=10)
                    assert (low, high) == (0, 0)
        assert ensure_topics(admin, settings, specs) == []  # existing topics are left alone
    finally:
        consumer.close()
        delete_topics(admin, readback.topics_matching(client, prefix))
