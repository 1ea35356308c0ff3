"""`lookthrough bench codec|pipeline|store`: measured figures beside their floors, medians of repeated runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.arguments import name_list, positive_float, positive_int, positive_int_list
from pipeline.marketkeys import SUITES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks beside their floors")
    which = parser.add_subparsers(dest="bench", required=True)
    codec = which.add_parser("codec", help="decode→decrypt→normalize→Avro per suite vs raw decrypt")
    codec.add_argument("--records", type=positive_int, default=5000, help="records per suite (RSA uses a fifth)")
    codec.add_argument("--repeat", type=positive_int, default=5, help="runs per suite (medians)")
    codec.add_argument("--suites", type=name_list(SUITES), default=("x25519", "sm4", "rsa"),
                       help="comma-separated: " + ", ".join(SUITES))  # fmt: skip
    codec.set_defaults(handler=_codec)
    pipeline = which.add_parser("pipeline", help="end to end on the broker vs Kafka pass-through and crypto floors")
    pipeline.add_argument("--records", type=positive_int, default=20_000,
                          help="reports per suite (RSA uses a quarter)")  # fmt: skip
    pipeline.add_argument("--latency-records", type=positive_int, default=3000, help="reports fed in the latency phase")
    pipeline.add_argument("--suites", type=name_list(SUITES), default=("x25519", "rsa"),
                          help="comma-separated: " + ", ".join(SUITES))  # fmt: skip
    pipeline.add_argument("--workers", type=positive_int_list, default=(1, 2),
                          help="worker processes per run, comma-separated")  # fmt: skip
    pipeline.add_argument("--repeat", type=positive_int, default=1,
                          help="runs per configuration, in rounds (medians too)")  # fmt: skip
    pipeline.add_argument("--latency-rate", type=positive_float,
                          help="reports/s fed in the latency phase (default: half the measured)")  # fmt: skip
    pipeline.add_argument("--latency-log", type=Path, metavar="DIR",
                          help="write each run's per-report latencies as CSV files into DIR")  # fmt: skip
    pipeline.set_defaults(handler=_pipeline)
    store = which.add_parser("store", help="store sink into the ClickHouse server vs clickhouse-driver bulk insert")
    store.add_argument("--reports", type=positive_int, default=40_000, help="generated reports (≈ 2.3 rows each)")
    store.add_argument("--repeat", type=positive_int, default=3, help="floor and sink runs (medians)")
    store.add_argument("--batch-rows", type=positive_int, default=20_000, help="rows per insert")
    store.add_argument("--python-decode", action="store_true", help="also time the sink decoding in Python")
    store.add_argument("--sinks", type=positive_int, default=1, help="sink processes sharing the partitions")
    store.set_defaults(handler=_store)


def _codec(args: argparse.Namespace) -> int:
    from pipeline.bench import codec

    counts = {s: max(1, args.records // 5) if s == "rsa" else args.records for s in args.suites}
    print(codec.report(codec.run(counts, args.repeat)))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from pipeline.bench import pipeline

    counts = {s: max(1, args.records // 4) if s == "rsa" else args.records for s in args.suites}
    if args.latency_log is not None:
        args.latency_log.mkdir(parents=True, exist_ok=True)
    print(pipeline.report(pipeline.run(counts, args.latency_records, list(args.workers), args.repeat,
                                       args.latency_rate, args.latency_log)))  # fmt: skip
    return 0


def _store(args: argparse.Namespace) -> int:
    from pipeline.store import bench

    print(bench.report(bench.run(args.reports, args.repeat, args.batch_rows, args.python_decode, args.sinks)))
    return 0
