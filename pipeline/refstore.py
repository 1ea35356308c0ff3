"""Reference data on compacted `lt.ref.<kind>` topics: publish (operators) and follow (workers).

`publish` validates every record against its lookthrough.<Kind> schema before anything is
sent, so a bad file changes nothing. `ReferenceFollower` reads the topics from the start
into a `ReferenceData`, and keeps applying updates while the worker runs, so changes take
effect without a restart. A null value is a tombstone: the entity is deleted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from pipeline import schemas
from pipeline.config import Settings
from pipeline.errors import ConfigError, RejectError
from pipeline.refdata import KINDS, ReferenceData, entity_key

log = logging.getLogger(__name__)


def read_records(kind: str, path: Path) -> list[dict[str, Any]]:
    """Records of `kind` from a JSON array, JSON lines, or CSV file (list and map columns as JSON)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown reference kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix == ".csv":
        import csv

        records = []
        for row_number, row in enumerate(csv.DictReader(text.splitlines()), start=2):  # the header is row 1
            try:
                records.append(_from_csv(kind, row))
            except ValueError as exc:  # a number or a JSON cell that is not one
                raise ConfigError(f"{path} row {row_number}: {exc}") from None
        return records
    data: Any
    try:
        if text.lstrip().startswith("["):
            data = json.loads(text)
        else:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON (a JSON array, or one object per line): {exc}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ConfigError(f"{path}: expected a JSON array of objects or JSON lines")
    return data


def _from_csv(kind: str, row: Mapping[str, str]) -> dict[str, Any]:
    """One CSV row as a record; ValueError naming the column whose cell is not of its type."""
    fields = {f["name"]: f["type"] for f in schemas.schema_json(KINDS[kind][0])["fields"]}
    record: dict[str, Any] = {}
    for name, value in row.items():
        kind_of = fields.get(name)
        if kind_of is None:
            raise ConfigError(f"column {name!r} is not a field of {KINDS[kind][0]}")
        if value is None:  # a row shorter than the header
            raise ValueError(f"no value for column {name!r}")
        try:
            record[name] = _cell(kind_of, value)
        except ValueError as exc:
            raise ValueError(f"column {name!r}: {exc}") from None
    return record


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no", "")


def _cell(kind_of: Any, value: str) -> Any:
    if isinstance(kind_of, dict) and kind_of.get("type") in ("array", "map"):
        try:
            return json.loads(value) if value else ([] if kind_of["type"] == "array" else {})
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON {kind_of['type']}: {exc.msg}") from None
    if kind_of == "boolean":
        if value.strip().lower() not in _TRUE + _FALSE:
            raise ValueError(f"not a boolean (true/false, yes/no, 1/0): {value!r}")
        return value.strip().lower() in _TRUE
    if isinstance(kind_of, list) and value == "":
        return None
    if kind_of in ("int", "long") or "long" in str(kind_of):  # int, long, timestamp-millis, optional long
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"not an integer: {value!r}") from None
    return value


def encode_records(kind: str, records: Iterable[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
    """(key, value) per record; ConfigError naming the first invalid record, before any I/O."""
    name = KINDS[kind][0]
    now = int(time.time() * 1000)
    out = []
    for index, record in enumerate(records):
        datum = dict(record)
        datum.setdefault("updated_at", now)
        try:
            out.append((entity_key(kind, datum), schemas.encode(name, datum)))
        except KeyError as exc:
            raise ConfigError(f"{kind} record {index + 1} does not fit {name}: field {exc} is missing") from None
        except ValueError as exc:
            raise ConfigError(f"{kind} record {index + 1} does not fit {name}: {exc}") from None
    return out


def publish(settings: Settings, kind: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Validate then produce to `lt.ref.<kind>`; return the count. Raises on any delivery failure."""
    encoded = encode_records(kind, records)
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True,
                         "acks": "all"})  # fmt: skip
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    topic = settings.topics.ref(kind)
    for key, value in encoded:
        producer.produce(topic, value, key=key.encode(), on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(30)
    if failures or remaining:
        raise ConfigError(f"{len(failures) + remaining} {kind} records were not delivered to {topic}")
    return len(encoded)


def publish_directory(settings: Settings, directory: Path) -> int:
    """Publish every `<kind>.json` of a directory (as `lookthrough generate` writes them)."""
    return sum(publish(settings, kind, read_records(kind, directory / f"{kind}.json")) for kind in KINDS)


class ReferenceFollower:
    """Keeps a `ReferenceData` in step with the `lt.ref.*` topics."""

    def __init__(self, settings: Settings, ref: ReferenceData) -> None:
        self.ref = ref
        self.topics = {settings.topics.ref(kind): kind for kind in KINDS}
        self.consumer = Consumer({
            **settings.kafka.client_config(),
            "group.id": "lookthrough-ref-follower",  # offsets are never committed: always from the start
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        })
        metadata = self.consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in self.topics if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]  # fmt: skip
        self.consumer.assign(partitions)
        self.partitions = partitions
        self.applied = 0

    def catch_up(self, timeout: float = 30.0) -> int:
        """Apply everything up to the current end of every reference topic."""
        ends = {}
        for tp in self.partitions:
            _, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            ends[(tp.topic, tp.partition)] = high
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(timeout=0.2)
            positions = self.consumer.position(self.partitions)
            if all(p.offset >= ends[(p.topic, p.partition)] or (p.offset < 0 and ends[(p.topic, p.partition)] == 0)
                   for p in positions):  # fmt: skip
                return self.applied
        raise ConfigError(f"reference topics not read to their end within {timeout:.0f}s")

    def poll(self, timeout: float = 0.0, max_messages: int = 1000) -> int:
        """Apply pending updates without blocking longer than `timeout`; return how many."""
        messages = self.consumer.consume(max_messages, timeout=timeout)
        count = 0
        for message in messages:
            if message.error():
                log.warning("reference topic error: %s", message.error())
                continue
            kind = self.topics[str(message.topic())]
            key = (message.key() or b"").decode()
            value = message.value()
            if value is None:
                self.ref.apply(kind, key, None)
            else:
                try:
                    _, record = schemas.decode(value, expected=KINDS[kind][0])
                except RejectError:
                    log.error("skipping an undecodable %s record at offset %s", kind, message.offset())
                    continue
                self.ref.apply(kind, key, record)
            count += 1
        self.applied += count
        return count

    def close(self) -> None:
        self.consumer.close()
