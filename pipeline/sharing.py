"""Device-sharing state (一机多户): sharing key → {investor: last seen}, kept on a compacted topic.

A sharing key is a keyed hash of one unique identifier of a device (its disk serial, its BIOS
serial, its IMEI, …), or its whole fingerprint when a login carries no unique identifier
(`pipeline.stages.enrich.sharing_keys`), so one device has one to three keys and a login
updates one or two. Workers are partitioned by investor, so one device's reports reach several
workers. Each worker writes the changed keys' states to `lt.state.device-sharing` inside its
transaction and follows that topic to merge what the others saw. The merge takes the latest
time per investor, so it is order-free and idempotent; a restarted worker rebuilds from the
topic. A key's investors expire a window after its newest sighting, so a state stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings


def merge(into: dict[str, int], other: dict[str, int]) -> None:
    for investor, seen in other.items():
        if into.get(investor, -1) < seen:
            into[investor] = seen


def encode_state(state: dict[str, int]) -> bytes:
    return json.dumps(state, separators=(",", ":"), sort_keys=True).encode()


class SharingTable(MutableMapping[str, dict[str, int]]):
    """The per-key state; `drain_changes` yields what must go to the changelog.

    A key is written again only when its investor set changed or a sighting moved by more
    than `resolution_ms`: the same investor on the same device all day needs no write per
    login, and a window of hours does not need millisecond sightings. A login that updates two
    keys of its device writes each of them by the same rule.
    """

    def __init__(self, resolution_ms: int = 600_000) -> None:
        self.state: dict[str, dict[str, int]] = {}
        self.written: dict[str, dict[str, int]] = {}
        self.pending: dict[str, dict[str, int]] = {}
        self.changed: set[str] = set()
        self.resolution_ms = resolution_ms

    def __getitem__(self, key: str) -> dict[str, int]:
        return self.state[key]

    def get(self, key: str, default: Any = None) -> Any:
        """`Mapping.get` without its KeyError round trip (the processor asks once per key and login)."""
        return self.state.get(key, default)

    def __setitem__(self, key: str, value: dict[str, int]) -> None:
        self.state[key] = value
        self.changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self.state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)

    def _material(self, key: str) -> bool:
        current, written = self.state.get(key), self.written.get(key)
        if current is None:
            return False
        if written is None or current.keys() != written.keys():
            return True
        return any(seen - written[investor] > self.resolution_ms for investor, seen in current.items())

    def drain_changes(self) -> list[tuple[str, bytes]]:
        """Changelog records for this transaction; `confirm_changes` once it has committed."""
        out = []
        for key in self.changed:
            if self._material(key):
                self.pending[key] = dict(self.state[key])
                out.append((key, encode_state(self.state[key])))
        self.changed.clear()
        return out

    def confirm_changes(self) -> None:
        self.written.update(self.pending)
        self.pending.clear()

    def discard_changes(self) -> None:
        """After an abort: the rewound batch will mark its devices changed again when reprocessed."""
        self.pending.clear()
        self.changed.clear()

    def merge_remote(self, key: str, value: bytes) -> None:
        remote = json.loads(value)
        merge(self.state.setdefault(key, {}), remote)
        merge(self.written.setdefault(key, {}), remote)


class SharingFollower:
    """Reads the sharing changelog from the start and merges it into a `SharingTable`."""

    def __init__(self, settings: Settings, table: SharingTable) -> None:
        self.table = table
        self.consumer = Consumer({
            **settings.kafka.client_config(),
            "group.id": "lookthrough-sharing-follower",  # never commits; always from the start
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        })
        topic = settings.topics.sharing_state
        metadata = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        partitions = list(metadata.partitions) if metadata is not None and not metadata.error else []
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def poll(self, timeout: float = 0.0, max_messages: int = 2000) -> int:
        count = 0
        for message in self.consumer.consume(max_messages, timeout=timeout):
            key, value = message.key(), message.value()
            if message.error() or key is None or value is None:
                continue
            self.table.merge_remote(key.decode(), value)
            count += 1
        return count

    def close(self) -> None:
        self.consumer.close()
