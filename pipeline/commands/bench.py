"""`lookthrough bench codec`: measured figures beside their floors, medians of repeated runs."""

from __future__ import annotations

import argparse
from typing import Any


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
    pipeline.set_defaults(handler=_pipeline)


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
    print(pipeline.report(pipeline.run(counts, args.latency_records)))
    return 0
