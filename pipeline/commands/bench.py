"""`lookthrough bench codec|pipeline|store`: measured figures beside their floors, medians of repeated runs."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks beside their floors")
    which = parser.add_subparsers(dest="bench", required=True)
    codec = which.add_parser("codec", help="decode→decrypt→normalize→Avro per suite vs raw decrypt")
    codec.add_argument("--records", type=int, default=5000, help="records per suite (RSA uses a fifth)")
    codec.add_argument("--repeat", type=int, default=5)
    codec.add_argument("--suites", default="x25519,sm4,rsa")
    codec.set_defaults(handler=_codec)
    pipeline = which.add_parser("pipeline", help="end to end on the broker vs Kafka pass-through and crypto floors")
    pipeline.add_argument("--records", type=int, default=20_000, help="reports per suite (RSA uses a quarter)")
    pipeline.add_argument("--latency-records", type=int, default=3000)
    pipeline.add_argument("--suites", default="x25519,rsa")
    pipeline.add_argument("--workers", default="1,2", help="worker processes per run, comma-separated")
    pipeline.add_argument("--repeat", type=int, default=1, help="runs per configuration, in rounds (medians too)")
    pipeline.add_argument("--latency-rate", type=float,
                          help="reports/s fed in the latency phase (default: half the measured)")
    pipeline.set_defaults(handler=_pipeline)
    store = which.add_parser("store", help="store sink into the ClickHouse server vs clickhouse-driver bulk insert")
    store.add_argument("--reports", type=int, default=40_000, help="generated reports (≈ 2.3 rows each)")
    store.add_argument("--repeat", type=int, default=3)
    store.add_argument("--batch-rows", type=int, default=20_000)
    store.add_argument("--python-decode", action="store_true", help="also time the sink decoding in Python")
    store.add_argument("--sinks", type=int, default=1, help="sink processes sharing the partitions")
    store.set_defaults(handler=_store)


def _codec(args: argparse.Namespace) -> int:
    from pipeline.bench import codec

    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    counts = {s: args.records // 5 if s == "rsa" else args.records for s in suites}
    print(codec.report(codec.run(counts, args.repeat)))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from pipeline.bench import pipeline

    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    counts = {s: args.records // 4 if s == "rsa" else args.records for s in suites}
    workers = [int(n) for n in args.workers.split(",") if n.strip()]
    if args.repeat < 1:
        raise ConfigError("--repeat must be at least 1")
    if args.latency_rate is not None and not args.latency_rate > 0:
        raise ConfigError("--latency-rate must be positive")
    print(pipeline.report(pipeline.run(counts, args.latency_records, workers, args.repeat, args.latency_rate)))
    return 0


def _store(args: argparse.Namespace) -> int:
    from pipeline.store import bench

    print(bench.report(bench.run(args.reports, args.repeat, args.batch_rows, args.python_decode, args.sinks)))
    return 0
