"""`lookthrough generate`: a seeded synthetic market with reference data, reports and ground truth.

Writes into --out: keyring/ (the monitoring center's keys for this market, owner-only),
public-keys.json (what reporters hold), reference/<kind>.json, ingress.jsonl (one Kafka
record per line: topic, key, Base64 value), truth.jsonl (what each report must become),
and market.json (shared devices, shared public IPs, counts). With --bootstrap the records
are also produced to Kafka, as fast as possible or at --rate records/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.arguments import name_list, non_negative_float, positive_int
from pipeline.crypto.admin import export_public
from pipeline.crypto.files import make_private_dir, write_owner_only
from pipeline.errors import ConfigError
from pipeline.generate import DEFECTS, PlanConfig, plan_reports, truth_json
from pipeline.market import MarketConfig, build_market
from pipeline.marketkeys import SUITES, create_market_keyring


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("generate", help="generate a synthetic market with ground truth")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument("--reports", type=positive_int, default=20_000, help="reports in the market")
    parser.add_argument("--seed", type=int, default=MarketConfig.seed, help="the same seed, the same market")
    parser.add_argument("--defect-rate", type=non_negative_float, default=PlanConfig.defect_rate,
                        help=f"rate of each of the {len(DEFECTS)} bad-input classes, at most 1/{len(DEFECTS)}")
    parser.add_argument("--suites", type=name_list(SUITES), default=tuple(SUITES),
                        help="comma-separated: " + ", ".join(SUITES))  # fmt: skip
    parser.add_argument("--bootstrap", help="also produce the records to this Kafka cluster")
    parser.add_argument("--rate", type=non_negative_float, default=0.0, help="records/s when producing (0 = unlimited)")
    parser.set_defaults(handler=_generate)


def generate_market(
    out: Path, *, reports: int, seed: int, defect_rate: float, suites: tuple[str, ...]
) -> dict[str, Any]:
    """Write the market files into `out`; return the summary also written to market.json."""
    out.mkdir(parents=True, exist_ok=True)
    make_private_dir(out / "keyring")
    keyring, keys = create_market_keyring(out / "keyring", suites)
    write_owner_only(out / "public-keys.json", json.dumps(export_public(keyring, include_psk=True)).encode())
    market = build_market(MarketConfig(seed=seed))
    (out / "reference").mkdir(exist_ok=True)
    for kind, records in market.reference_data().items():
        (out / "reference" / f"{kind}.json").write_text(json.dumps(records, ensure_ascii=False, indent=1))
    outcomes: Counter[str] = Counter()
    plan = PlanConfig(reports=reports, defect_rate=defect_rate, seed=seed)
    with open(out / "ingress.jsonl", "w") as ingress, open(out / "truth.jsonl", "w") as truth:
        for planned in plan_reports(market, keys, plan):
            ingress.write(planned.to_json() + "\n")
            truth.write(truth_json(planned.truth) + "\n")
            outcomes[planned.truth.code or planned.truth.outcome] += 1
            for warning in planned.truth.warnings:
                outcomes[warning] += 1
    summary = {
        "seed": seed,
        "reports": reports,
        "keyring": str(keyring),
        "key_versions": {"active": list(keys.active), "revoked": keys.revoked, "test": keys.test},
        "outcomes": dict(sorted(outcomes.items())),
        "shared_devices": market.shared_devices,
        "shared_public_ips": market.shared_ips,
        "investors_without_codes": [market.investor_key(i) for i in market.investors if not i.trading_codes],
    }
    (out / "market.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return summary


def produce_file(ingress: Path, bootstrap: str, rate: float) -> int:
    """Produce every record of an ingress.jsonl verbatim (idempotent producer); return the count."""
    import base64

    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "compression.type": "lz4"})  # fmt: skip
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    count, start = 0, time.monotonic()
    with open(ingress) as lines:
        for line in lines:
            record = json.loads(line)
            while True:
                try:
                    producer.produce(record["topic"], base64.b64decode(record["value"]),
                                     key=record["key"].encode(), on_delivery=delivered)  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.1)
            count += 1
            producer.poll(0)
            if rate > 0:
                ahead = count / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    producer.flush()
    if failures:
        raise RuntimeError(f"{len(failures)} records were not delivered: {failures[0]}")
    return count


def _generate(args: argparse.Namespace) -> int:
    if args.defect_rate * len(DEFECTS) > 1 + 1e-9:
        # Each class takes its own slice of one roll per report; past 1/len the later classes get none.
        raise ConfigError(f"--defect-rate {args.defect_rate} is more than 1/{len(DEFECTS)}: "
                          f"{len(DEFECTS)} bad-input classes at that rate would need over every report")  # fmt: skip
    summary = generate_market(args.out, reports=args.reports, seed=args.seed,
                              defect_rate=args.defect_rate, suites=args.suites)  # fmt: skip
    print(f"wrote {args.reports} reports to {args.out}: {json.dumps(summary['outcomes'])}")
    if args.bootstrap:
        count = produce_file(args.out / "ingress.jsonl", args.bootstrap, args.rate)
        print(f"produced {count} records to {args.bootstrap}", file=sys.stderr)
    return 0
