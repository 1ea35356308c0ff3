"""The sink: lt.reports, lt.dlq, lt.exchange.* and lt.ref.subscribers → batched inserts into the store.

Contract:
* reads with `read_committed` (aborted pipeline transactions are never stored) as its own
  consumer group; each record becomes one row of the table its topic feeds (`pipeline.store.tables`);
* batches per table (a topic partition feeds one table, so a batch holds whole offset ranges of
  its table's partitions): cuts one when it holds `batch_rows` records or is `flush_interval_ms`
  old and hands it to two background threads, which decode and store it
  (`pipeline.store.storing`) while the next batches are read and decoded; a batch's offsets are
  committed to Kafka only after its insert succeeded, batches in order. Why per table: each
  insert makes a part per partition in ClickHouse, whose fixed cost (tens of milliseconds on
  18.16, more for wide tables) dominated when a batch's records were split over several tables;
* when the store is unavailable the insert is retried with exponential back-off and jitter, the
  partitions are paused and the consumer only keeps its group membership: memory stays bounded
  (at most IN_FLIGHT batches handed over plus one being read per table), nothing is lost, and it
  catches up when the store returns; a crash or a rebalance before the commit only causes a reread;
* rereads are harmless: rows carry their deduplication keys (ReplacingMergeTree collapses them,
  analysts' queries read FINAL or count distinct keys), and each insert carries a token derived
  from its offset ranges, which current ClickHouse uses to drop an identical repeated insert;
* this thread only sorts records by table: values of the high-volume tables written with the
  current schema are kept raw for ClickHouse to decode (`pipeline.store.avrosql`), the rest for
  Python (`pipeline.store.tables`); a record that decodes as neither is logged, counted, skipped;
* `run(until_caught_up=True)` stores what is there and returns: once every partition is read to
  its end, the batches being read are stored at once (no more records can join them).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline import schemas
from pipeline.config import Settings, TopicNames
from pipeline.store.backend import Backend
from pipeline.store.batch import Batch
from pipeline.store.storing import AvroInserting, Backoff, SinkStats, Storer
from pipeline.store.tables import TABLES, Table, subscriber_tombstone

log = logging.getLogger(__name__)
PAUSE_AFTER_S = 5.0  # waiting longer than this for an insert means trouble: pause the partitions
IN_FLIGHT = 2  # batches handed to the background threads: one decoding while one is inserted
# Records per consume() call. Small: each call's Message objects are all alive until sorted into the
# batch, and the garbage collector walks such a crowd of new objects again and again; a few hundred
# are sorted and freed before it looks.
CONSUME_MAX = 1000


def sink_group(settings: Settings) -> str:
    return settings.clickhouse.sink_group or f"{settings.kafka.group}.store"


class Router:
    """Which table a topic feeds (exchange topics by prefix, so new exchanges need no restart)."""

    def __init__(self, topics: TopicNames) -> None:
        self.topics = topics
        self.fixed = {topics.reports: TABLES["reports"], topics.dlq: TABLES["dlq"],
                      topics.ref("subscribers"): TABLES["subscribers"]}  # fmt: skip

    def subscription(self) -> list[str]:
        exchanges = "^" + re.escape(self.topics.exchange_prefix) + ".+"
        return [self.topics.reports, self.topics.dlq, exchanges, self.topics.ref("subscribers")]

    def table(self, topic: str) -> Table | None:
        found = self.fixed.get(topic)
        if found is None and topic.startswith(self.topics.exchange_prefix):
            return TABLES["deliveries"]
        return found


@dataclass
class _Flight:
    """A batch being stored by the background thread."""

    batch: Batch
    future: Future[bool]
    abandon: threading.Event = field(default_factory=threading.Event)


class Sink:
    def __init__(self, settings: Settings, backend: Backend, *, group: str | None = None,
                 consumer_config: dict[str, Any] | None = None, decode_in_clickhouse: bool = True) -> None:  # fmt: skip
        ch = settings.clickhouse
        self.backend = backend
        self.router = Router(settings.topics)
        self.batch_rows = max(1, ch.batch_rows)
        self.flush_s = ch.flush_interval_ms / 1000
        self.group = group or sink_group(settings)
        self.consumer = Consumer({
            **settings.kafka.client_config(),
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 3000,  # new lt.exchange.* topics join quickly
            "queued.max.messages.kbytes": 32768,  # bounds librdkafka's prefetch beside our batches
            # Once that prefetch is full, librdkafka waits this long before fetching again (default
            # 1 s). The sink drains 32 MB in well under a second, so the default left it idle for
            # up to a second at a time (seen as stalls of 0.4 s and more in a 2-second run).
            "fetch.queue.backoff.ms": 20,
            "enable.partition.eof": True,  # end-of-partition events tell when the sink is caught up
            **(consumer_config or {}),
        })
        self.batches: dict[str, Batch] = {}  # per table, the batch being read (one table's partitions each)
        self.flights: deque[_Flight] = deque()  # handed over, oldest first; committed in this order
        self.executor = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="lt-store")
        self.stats = SinkStats()
        self.storer = Storer(backend, Backoff(ch.retry_initial_ms / 1000, ch.retry_max_ms / 1000), self.stats)
        self.running = True
        self.paused: list[TopicPartition] = []
        self.assigned: set[tuple[str, int]] = set()  # kept here: asking librdkafka waits on its thread
        self.at_end: set[tuple[str, int]] = set()  # partitions read to their end since their last record
        self.tables: dict[str, Table | None] = {}  # topic → table, memoized from the router
        # Values whose header names the current schema of a table with an SQL mapping go raw.
        self.raw_headers = {
            name: schemas.MAGIC + schemas.fingerprint(table.record)
            for name, table in TABLES.items() if decode_in_clickhouse and table.sql is not None
        }  # fmt: skip
        if self.raw_headers and not isinstance(backend, AvroInserting):
            self.storer.open_reader()  # before the first record, not while its batch waits

    def stop(self, *_: object) -> None:
        """Finish: the batches being stored get their current attempt, those being read a single one."""
        self.running = False
        self.storer.running = False

    # --- the loop -------------------------------------------------------------------------

    def run(self, *, until_caught_up: bool = False, timeout_s: float | None = None) -> SinkStats:
        """Consume and store until `stop()`, or until every assigned partition is read to its end
        and stored (`until_caught_up`), or `timeout_s` passes (TimeoutError)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.consumer.subscribe(self.router.subscription(), on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while self.running:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sink not caught up within {timeout_s:.0f}s")
                fullest = max((b.records for b in self.batches.values()), default=0)
                oldest = max((b.age() for b in self.batches.values()), default=None)
                wait = 0.2 if oldest is None else max(0.0, min(0.2, self.flush_s - oldest))
                messages = self.consumer.consume(max(1, min(self.batch_rows - fullest, CONSUME_MAX)), timeout=wait)
                if messages:
                    self._add_all(messages)
                while self.flights and self.flights[0].future.done():
                    self._land()
                # Nothing more to read once caught up: store every batch now rather than when it is
                # old enough, and wait for the stores rather than poll for records that are not coming.
                caught_up = until_caught_up and self._caught_up()
                for name in self._due(everything=caught_up):
                    self._launch(name)
                if caught_up:
                    if self.flights:
                        self._await_flight()
                    elif not messages and not self.batches:
                        break
            while self.flights:
                self._await_flight()
            for name in list(self.batches):
                self._launch(name, retry=False)
            while self.flights:
                self._await_flight()
        finally:
            for flight in self.flights:
                flight.abandon.set()
            self.executor.shutdown(wait=True)
            self.consumer.close()
            self.storer.close()
        return self.stats

    def _add_all(self, messages: list[Message]) -> None:
        """Put consumed records into their tables' batches (the hot loop: no method call per
        record beyond the Message accessors and a few dict lookups)."""
        batches, tables, headers, at_end = self.batches, self.tables, self.raw_headers, self.at_end
        for message in messages:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            key = (str(topic), int(partition or 0))
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(key)
                elif error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # an exchange topic deleted meanwhile
                    raise KafkaException(error)
                continue
            if key in at_end:  # events come in order: a record after an end means more data
                at_end.discard(key)
            table = tables.get(key[0], ...)
            if table is ...:
                table = tables[key[0]] = self.router.table(key[0])
            name = "" if table is None else table.name  # records of no table: only their offsets
            batch = batches.get(name)
            if batch is None:
                batch = batches[name] = Batch()
                if not self.stats.first_record_at:
                    self.stats.first_record_at = batch.started
            if key not in batch.first:
                batch.first[key] = int(offset or 0)
            batch.last[key] = int(offset or 0)
            batch.records += 1
            if table is None:
                continue
            value = message.value()
            header = headers.get(name)
            if value is not None and header is not None and value.startswith(header):
                batch.raw.setdefault(name, []).append(value)
            elif value is None:
                if name == "subscribers":  # a compacted reference topic's tombstone
                    tombstone = subscriber_tombstone(message.key(), message.timestamp()[1])
                    batch.rows.setdefault(name, []).append(tombstone)
            else:  # decoded in Python by a background thread
                batch.pending.setdefault(name, []).append(value)
        self.stats.records += len(messages)

    # --- handing batches to the background threads, landing them -------------------------

    def _due(self, *, everything: bool = False) -> list[str]:
        """Tables whose batch is full or old enough (or all, with `everything`)."""
        return [name for name, batch in self.batches.items()
                if everything or batch.records >= self.batch_rows or batch.age() >= self.flush_s]  # fmt: skip

    def _launch(self, name: str, *, retry: bool = True) -> None:
        """Hand table `name`'s batch to the background threads (waiting while IN_FLIGHT are there)."""
        while len(self.flights) >= IN_FLIGHT:
            self._await_flight()
        batch = self.batches.pop(name, None)
        if batch is None or not batch.records:  # dropped meanwhile (rebalance, or an earlier batch was given up)
            return
        flight = _Flight(batch, Future())
        flight.future = self.executor.submit(self.storer.store, batch, flight.abandon, retry)
        self.flights.append(flight)

    def _await_flight(self) -> None:
        """Wait for the oldest batch handed over, and land it. A short wait just blocks; a long one
        (the store is down) pauses the partitions and keeps polling, so the consumer stays in its
        group. (Pausing drops librdkafka's prefetched records: not done for a merely slow insert.)"""
        flight = self.flights[0]
        try:
            flight.future.result(timeout=PAUSE_AFTER_S)
        except TimeoutError:
            self._pause()
            while self.flights and self.flights[0] is flight and not flight.future.done():
                self._poll_paused(0.5)
        except Exception:  # raised again by _land, on this thread
            pass
        if self.flights and self.flights[0] is flight:
            self._land()

    def _land(self) -> None:
        """Commit the oldest batch's offsets; if it was given up, drop everything read after it."""
        flight = self.flights.popleft()
        if flight.future.result():  # permanent store errors surface here
            self._committed(flight.batch)
            if not self.flights:
                self._resume()
            return
        # Given up: a later batch must never commit past this one. Later batches are given up too
        # (they may still be inserted, which a reread deduplicates, but are never committed), the
        # batch being read is dropped, and, unless stopping, partitions reread from their commits.
        for later in self.flights:
            later.abandon.set()
        for later in self.flights:
            later.future.exception()  # wait: nothing of theirs may land after the rewind
        self.flights.clear()
        self.batches.clear()
        if self.running:
            self._rewind()

    def _committed(self, batch: Batch) -> None:
        """Commit a stored batch and count it."""
        self._commit(batch)
        for table, count in batch.counts().items():
            self.stats.rows[table] = self.stats.rows.get(table, 0) + count
        self.stats.flushes += 1
        self.stats.last_flush_at = time.monotonic()

    def _commit(self, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(batch.next_offsets().items())]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The rows are stored; a later reread of this range is collapsed by the deduplication keys.
            log.warning("offset commit failed after a successful insert", extra={"kafka_error": str(exc)})

    def _pause(self) -> None:
        if not self.paused:
            self.paused = list(self.consumer.assignment())
            if self.paused:
                self.consumer.pause(self.paused)
                log.warning("store slow or unavailable; consumption paused", extra={"partitions": len(self.paused)})

    def _resume(self) -> None:
        if self.paused:
            assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            still = [tp for tp in self.paused if (tp.topic, tp.partition) in assigned]
            if still:
                self.consumer.resume(still)
            self.paused = []
            log.info("consumption resumed")

    def _poll_paused(self, seconds: float) -> None:
        """Stay in the group while paused: consume() serves heartbeats' deadline and rebalances."""
        stray = self.consumer.consume(500, timeout=seconds)
        # Paused partitions deliver nothing; should a prefetched record slip through, rewind to
        # it rather than grow past the bound.
        # (After a rebalance inside this call, records of the new, unpaused assignment are such
        # records too: rewound, they are read again by the main loop.)
        firsts: dict[tuple[str, int], int] = {}
        for m in stray:
            key = (str(m.topic()), int(m.partition() or 0))
            error = m.error()
            if error is None:
                offset = int(m.offset() or 0)
                firsts[key] = min(firsts.get(key, offset), offset)
            elif error.code() == KafkaError._PARTITION_EOF:
                self.at_end.add(key)
        for (topic, partition), offset in firsts.items():
            self.at_end.discard((topic, partition))
            self.consumer.seek(TopicPartition(topic, partition, offset))

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset."""
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, timeout=10):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING  # nothing committed yet
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    # --- rebalances and the end -----------------------------------------------------------

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        # Eager rebalancing revokes every partition. A batch being stored may still commit now
        # (committing inside the revocation is allowed); one that cannot finish soon is given up,
        # as is the batch being read: after the assignment each partition resumes from its commit.
        committing = True
        for flight in self.flights:
            flight.abandon.set()
            try:
                ok = flight.future.result(timeout=10)
            except Exception as exc:  # still running, or failed: either way it is reread
                log.info("rebalance: batch in flight not committed", extra={"error": type(exc).__name__})
                ok = False
            committing = committing and ok  # in order: nothing after a batch that was not stored
            if committing:
                self._committed(flight.batch)
        self.flights.clear()
        unstored = sum(batch.records for batch in self.batches.values())
        if unstored:
            log.info("rebalance: dropping the unstored batches", extra={"records": unstored})
        self.batches.clear()
        self.paused = []
        self.assigned = set()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start every assigned partition afresh at its committed offset, unpaused.

        The revocation dropped what was read but not committed, so that must be read again; but
        librdkafka, given a partition back after a rebalance, would continue from where this member
        had read it (past the dropped records) and keep it paused if it was. Hence explicit start
        offsets (the beginning when nothing is committed, as auto.offset.reset says) and a resume."""
        self.at_end.clear()
        self.assigned = {(tp.topic, tp.partition) for tp in partitions}
        if not partitions:
            return
        committed = consumer.committed(partitions, timeout=30)
        start = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                 for tp in committed]  # fmt: skip
        consumer.assign(start)
        consumer.resume(start)

    def _caught_up(self) -> bool:
        """Every assigned partition reported its end (read_committed: the last stable offset) since
        its last record. Watermark queries would do too, but each waits behind the fetch long-poll."""
        return bool(self.assigned) and self.assigned <= self.at_end
