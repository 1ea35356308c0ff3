"""`lookthrough subscribe --exchange X`: what an exchange runs to take its data.

Consumes `lt.exchange.<X>` as consumer group `exchange-<X>` (read_committed, so aborted
pipeline transactions are never seen), decodes each ExchangeRecord with the published
schemas, prints JSON lines or appends CSV rows, and commits offsets after writing, so a
restart resumes where the last run stopped. Stops after --idle-exit seconds without data.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from typing import IO, Any

from pipeline import schemas
from pipeline.arguments import non_negative_float, non_negative_int
from pipeline.config import Settings
from pipeline.profile import limits

RECORD = "lookthrough.ExchangeRecord"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("subscribe", help="consume an exchange's topic (JSON lines or CSV)")
    parser.add_argument("--exchange", required=True, choices=limits().exchanges, help="whose topic to consume")
    parser.add_argument("--format", choices=("json", "csv"), default="json", help="JSON lines (default) or CSV")
    parser.add_argument("--out", help="file to append to (default stdout)")
    parser.add_argument("--group", help="consumer group (default exchange-<X>)")
    parser.add_argument("--idle-exit", type=non_negative_float, default=0.0,
                        help="stop after this many idle seconds (0 = never)")  # fmt: skip
    parser.add_argument("--max-records", type=non_negative_int, default=0,
                        help="stop after this many records (0 = no limit)")  # fmt: skip
    parser.set_defaults(handler=_subscribe)


def _columns() -> list[str]:
    return [f["name"] for f in schemas.schema_json(RECORD)["fields"]]


def _csv_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def consume(settings: Settings, exchange: str, out: IO[str], fmt: str, group: str,
            idle_exit: float, max_records: int, extra: dict[str, Any] | None = None) -> int:  # fmt: skip
    """Write records to `out` until idle or the limit; commit after each written batch."""
    from confluent_kafka import Consumer

    consumer = Consumer({
        **settings.kafka.client_config(),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **(extra or {}),
    })
    consumer.subscribe([settings.topics.exchange(exchange)])
    writer = csv.DictWriter(out, fieldnames=_columns()) if fmt == "csv" else None
    if writer is not None and (not out.seekable() or out.tell() == 0):
        writer.writeheader()  # not when appending to a file a previous run started
    written, last_data = 0, time.monotonic()
    try:
        while True:
            messages = consumer.consume(500, timeout=0.5)
            batch = [m for m in messages if not m.error() and m.value() is not None]
            for message in batch:
                _, record = schemas.decode(message.value(), expected=RECORD)
                if writer is not None:
                    writer.writerow({k: _csv_value(v) for k, v in record.items()})
                else:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
            if batch:
                out.flush()
                consumer.commit(asynchronous=False)
                last_data = time.monotonic()
            if max_records and written >= max_records:
                break
            if idle_exit and time.monotonic() - last_data > idle_exit:
                break
    finally:
        consumer.close()
    return written


def _subscribe(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    group = args.group or f"exchange-{args.exchange}"
    if args.out:
        with open(args.out, "a", newline="", encoding="utf-8") as out:
            count = consume(settings, args.exchange, out, args.format, group, args.idle_exit, args.max_records)
    else:
        count = consume(settings, args.exchange, sys.stdout, args.format, group, args.idle_exit, args.max_records)
    print(f"{count} records from {settings.topics.exchange(args.exchange)}", file=sys.stderr)
    return 0
