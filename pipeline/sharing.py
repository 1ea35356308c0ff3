"""Device-sharing state (一机多户): sharing key → {investor: last seen}, kept on a compacted topic.

A sharing key is a keyed hash of one unique identifier of a device (its disk serial, its BIOS
serial, its IMEI, …), or its whole fingerprint when a login carries no unique identifier
(`pipeline.stages.enrich.sharing_keys`), so one device has one to three keys and a login
updates one or two. Workers are partitioned by investor, so one device's reports reach several
workers. Each worker writes the changed keys' states to `lt.state.device-sharing` inside its
transaction and follows that topic to merge what the others saw. The merge takes the latest
time per investor, so it is order-free and idempotent; a restarted worker rebuilds from the
topic. A key's investors expire a window after its newest sighting, so a state stays small.

Idle keys are deleted: a key whose newest sighting is more than the window (plus a grace) older
than the table's horizon, the newest sighting it has seen, locally or merged, is dropped from
memory and tombstoned on the changelog in a transaction like any other change. The horizon is
event time, not the wall clock, so a replay of old data keeps the state of its own window. A
tombstone from another worker deletes a key only if it is idle here too; a key that is live here
is written again, so the changelog never loses sightings that a worker still counts.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import PipelineSettings, Settings

# Keys are filed in buckets by their newest sighting, a sixteenth of the window each, so an expiry
# pass costs one heap step per bucket plus O(expired keys), never a scan of every key; a key is
# deleted at most a sixteenth of a window later than it could be.
BUCKETS_PER_WINDOW = 16
# Tombstones per transaction at most: a morning's worth of keys going idle at once must not make
# one transaction (and its flush before the commit) arbitrarily large. The rest go in the next.
EXPIRE_PER_DRAIN = 5_000
# A sighting further ahead of the wall clock than this does not move the horizon: a terminal clock
# set to a wrong year would otherwise make every other key look idle, here and, through the
# changelog, on every worker. Terminal clocks that merely run a few minutes fast still count.
AHEAD_OF_CLOCK_MS = 600_000
_NEVER = -(1 << 62)  # the newest sighting of an empty state, and the horizon of an empty table


def _newest(state: dict[str, int]) -> int:
    # Not max(..., default=): its keyword costs more than the max itself on a state of a few investors.
    return max(state.values()) if state else _NEVER


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

    With a `window_ms`, idle keys expire. The horizon is the newest sighting the table has seen;
    it moves when a remote state is merged and, for local changes, when they are drained. A key
    whose newest sighting is before `horizon - window_ms - grace_ms` is idle: `drain_changes`
    tombstones it (whole buckets of keys at a time, at most `expire_max` per call),
    `confirm_changes` drops it from memory once the tombstone has committed, unless it was seen
    again meanwhile, and `discard_changes` keeps it, to be expired by a later drain. The grace
    lets a worker that lags behind the newest data by less than it still see a whole window.
    A state must be assigned back after it is changed in place (as `sharing_warning` does), so
    that the table sees its new sightings; without a window nothing expires.
    """

    def __init__(
        self,
        resolution_ms: int = 600_000,
        window_ms: int | None = None,
        grace_ms: int = 0,
        expire_max: int = EXPIRE_PER_DRAIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state: dict[str, dict[str, int]] = {}
        self.written: dict[str, dict[str, int]] = {}
        self.pending: dict[str, dict[str, int]] = {}
        self.changed: set[str] = set()
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.expire_max = expire_max
        self.clock = clock
        # 0: no expiry. Sightings on the changelog are at most a bucket stale, so that another
        # worker's view of a key is never much older than the key's expiry granularity.
        self.bucket_ms = max(1, window_ms // BUCKETS_PER_WINDOW) if window_ms else 0
        self.resolution_ms = min(resolution_ms, self.bucket_ms) if self.bucket_ms else resolution_ms
        self.horizon = _NEVER
        self.ceiling = _NEVER  # wall clock + AHEAD_OF_CLOCK_MS when last read; read again when passed
        self.bucket_of: dict[str, int] = {}  # key → bucket of its newest sighting (`newest // bucket_ms`)
        # bucket → keys filed there; some may have moved on since, or be listed twice (a list: an
        # append costs less than a set's add, and `_expire` checks every key it takes anyway)
        self.buckets: dict[int, list[str]] = {}
        self.due: list[int] = []  # heap of the buckets in `buckets`, oldest first
        self.expiring: set[str] = set()  # tombstoned in the transaction in progress

    @classmethod
    def from_settings(cls, pipeline: PipelineSettings) -> SharingTable:
        """A worker's table: keys expire a sharing window plus the expiry grace after their newest sighting."""
        return cls(window_ms=pipeline.sharing_window_seconds * 1000,
                   grace_ms=pipeline.sharing_expiry_grace_seconds * 1000)  # fmt: skip

    def __getitem__(self, key: str) -> dict[str, int]:
        return self.state[key]

    def get(self, key: str, default: Any = None) -> Any:
        """`Mapping.get` without its KeyError round trip (the processor asks once per key and login)."""
        return self.state.get(key, default)

    def __setitem__(self, key: str, value: dict[str, int]) -> None:
        self.state[key] = value
        self.changed.add(key)  # filed by its newest sighting when drained (`_scan_changed`)

    def __delitem__(self, key: str) -> None:
        """Drop the key from memory only: the changelog keeps it (expiry is what writes tombstones)."""
        del self.state[key]
        self._forget(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)

    def _idle(self, value: dict[str, int]) -> bool:
        """Whether a state's newest sighting is more than the window and grace behind the horizon."""
        if not self.bucket_ms:
            return False
        return _newest(value) < self._idle_before()

    def _idle_before(self) -> int:
        assert self.window_ms is not None
        return self.horizon - self.window_ms - self.grace_ms

    def _index(self, key: str, value: dict[str, int]) -> None:
        """Move the horizon to the key's newest sighting if later, and file the key by it."""
        newest = _newest(value)
        if newest > self.horizon:
            ceiling = self.ceiling if newest <= self.ceiling else self._read_clock()
            if newest <= ceiling:
                self.horizon = newest
        bucket = newest // self.bucket_ms
        if self.bucket_of.get(key) != bucket:
            self._file(key, bucket)

    def _scan_changed(self) -> list[str]:
        """The keys changed since the last drain whose change is material (`_material`); with a window,
        each is also filed by its newest sighting and moves the horizon (`_index`). One pass, so a
        key's state is fetched once per transaction: it has left the CPU's caches by then, and this
        loop is most of what expiry adds per record."""
        state, bucket_of, buckets, bucket_ms = self.state, self.bucket_of, self.buckets, self.bucket_ms
        horizon, ceiling = self.horizon, self.ceiling
        material = []
        for key in self.changed:
            value = state.get(key)
            if value is None:
                continue  # forgotten since (a remote tombstone)
            if bucket_ms:  # `_index`, inlined
                newest = max(value.values()) if value else _NEVER
                if newest > horizon:
                    if newest > ceiling:
                        ceiling = self._read_clock()
                    if newest <= ceiling:
                        horizon = newest
                bucket = newest // bucket_ms
                if bucket_of.get(key) != bucket:
                    keys = buckets.get(bucket)
                    if keys is None:
                        self._file(key, bucket)
                    else:
                        bucket_of[key] = bucket
                        keys.append(key)
            if self._material(key, value):
                material.append(key)
        self.horizon = horizon
        return material

    def _read_clock(self) -> int:
        """The latest sighting that may move the horizon, from the wall clock (see AHEAD_OF_CLOCK_MS).
        Read only when a sighting passes the last value, so about once per AHEAD_OF_CLOCK_MS."""
        self.ceiling = int(self.clock() * 1000) + AHEAD_OF_CLOCK_MS
        return self.ceiling

    def _file(self, key: str, bucket: int) -> None:
        # The key's entry in its previous bucket stays; `_expire` skips it, as `bucket_of` moved on.
        self.bucket_of[key] = bucket
        keys = self.buckets.get(bucket)
        if keys is None:
            self.buckets[bucket] = keys = []
            heapq.heappush(self.due, bucket)
        keys.append(key)

    def _forget(self, key: str) -> None:
        """Drop what the table knows of a key besides its state (already gone)."""
        self.written.pop(key, None)
        self.pending.pop(key, None)  # a write in flight must not make `written` hold a forgotten key
        self.bucket_of.pop(key, None)

    def _expire(self) -> list[tuple[str, bytes | None]]:
        """Tombstones for the keys of every bucket that lies wholly before the idle limit."""
        out: list[tuple[str, bytes | None]] = []
        limit = self._idle_before()
        while self.due and len(out) < self.expire_max:
            bucket = self.due[0]
            if (bucket + 1) * self.bucket_ms > limit:
                break  # the oldest bucket may still hold a live key: nothing is due yet
            keys = self.buckets[bucket]
            while keys and len(out) < self.expire_max:
                key = keys.pop()
                # Else seen again since (filed later), forgotten, or listed twice in this bucket.
                if self.bucket_of.get(key) == bucket and key not in self.expiring:
                    self.expiring.add(key)
                    out.append((key, None))
            if not keys:
                heapq.heappop(self.due)
                del self.buckets[bucket]
        return out

    def _material(self, key: str, current: dict[str, int]) -> bool:
        written = self.written.get(key)
        if written is None or current.keys() != written.keys():
            return True
        return any(seen - written[investor] > self.resolution_ms for investor, seen in current.items())

    def drain_changes(self) -> list[tuple[str, bytes | None]]:
        """Changelog records for this transaction, tombstones (value None) first; `confirm_changes`
        once it has committed, `discard_changes` if it aborted."""
        material = self._scan_changed()
        self.changed.clear()
        out = self._expire() if self.due else []
        for key in material:
            if key not in self.expiring:  # an idle key's tombstone supersedes its state
                value = self.state[key]
                self.pending[key] = dict(value)
                out.append((key, encode_state(value)))
        return out

    def confirm_changes(self) -> None:
        """The drained records committed: remember what was written, delete the tombstoned keys."""
        self.written.update(self.pending)
        self.pending.clear()
        for key in self.expiring:
            self.written.pop(key, None)  # the changelog's last record of the key is its tombstone
            value = self.state.get(key)
            if value is None:
                continue  # a remote tombstone deleted it meanwhile
            if self._idle(value):
                del self.state[key]
                self._forget(key)
            else:
                self.changed.add(key)  # seen again after its tombstone was drained: write it after it
        self.expiring.clear()

    def discard_changes(self) -> None:
        """After an abort: the rewound batch will mark its devices changed again when reprocessed,
        and the keys that were to be tombstoned are filed again, so a later drain expires them."""
        self.pending.clear()
        self._scan_changed()  # their states keep the batch's sightings: file the keys by them
        self.changed.clear()
        for key in self.expiring:
            value = self.state.get(key)
            if value is not None:
                self._file(key, _newest(value) // self.bucket_ms)
        self.expiring.clear()

    def merge_remote(self, key: str, value: bytes | None) -> None:
        """Merge one changelog record: a state by the latest sighting per investor, a tombstone
        (None) by deleting the key if it is idle here as well. Idempotent and order-free up to
        idle keys, which count for nothing and go either way."""
        if value is None:
            self._merge_tombstone(key)
            return
        remote = json.loads(value)
        state = self.state.setdefault(key, {})
        merge(state, remote)
        merge(self.written.setdefault(key, {}), remote)
        if self.bucket_ms:
            self._index(key, state)  # an idle state (an old one replayed) is tombstoned by the next drain

    def _merge_tombstone(self, key: str) -> None:
        value = self.state.get(key)
        if value is None:
            return
        if self._idle(value):
            del self.state[key]
            self._forget(key)
        else:
            # The tombstone took the key off the changelog, this worker's sightings with it, yet it
            # is live here (sightings the other worker had not seen, or a horizon behind its own):
            # write it again in full, so the changelog and a restarted worker keep it. A write of it
            # still in flight may land before the tombstone: it does not count as written either.
            self.written.pop(key, None)
            self.pending.pop(key, None)
            self.changed.add(key)


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
        """Merge what has been committed since; tombstones (value None) included."""
        count = 0
        for message in self.consumer.consume(max_messages, timeout=timeout):
            key = message.key()
            if message.error() or key is None:
                continue
            self.table.merge_remote(key.decode(), message.value())
            count += 1
        return count

    def close(self) -> None:
        self.consumer.close()
