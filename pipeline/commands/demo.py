"""`lookthrough demo`: the whole flow on a local broker, in one command.

Generates a market, loads its reference data, starts worker processes, feeds the reports
the way reporters would, waits until every report has its feedback, and prints what each
exchange received, the rejects and warnings by code, the most shared physical devices
(fingerprints linked as in the store's queries), and the throughput. Each run uses its own
topic prefix so runs never mix.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.arguments import positive_int
from pipeline.config import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="generate a market and run it through local workers")
    parser.add_argument("--reports", type=positive_int, default=20_000, help="reports in the generated market")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes sharing the partitions")
    parser.add_argument("--seed", type=int, default=20190614, help="the market's seed: the same seed, the same market")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("LT_RUN_DIR", ".run")) / "demo",
                        help="each run writes its market, logs and store in a new directory here")  # fmt: skip
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from pipeline import localrun, readback, refstore
    from pipeline.commands.generate import generate_market
    from pipeline.topics import ensure_topics, output_topics

    run_id = time.strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir / run_id
    print(f"generating {args.reports} reports into {workdir} ...")
    summary = generate_market(workdir, reports=args.reports, seed=args.seed, defect_rate=0.006,
                              suites=("x25519", "rsa", "sm4"))  # fmt: skip
    bootstrap = Settings.from_env().kafka.bootstrap
    prefix = f"demo-{uuid.uuid4().hex[:6]}."
    env = localrun.isolated_env(prefix, bootstrap)
    env["LT_PIPELINE_KEYRING"] = summary["keyring"]
    env.setdefault("LT_PIPELINE_FINGERPRINT_KEY", os.environ.get("LT_PIPELINE_FINGERPRINT_KEY", uuid.uuid4().hex))
    os.environ.update(env)
    settings = Settings.from_env()
    client = settings.kafka.client_config()
    ensure_topics(AdminClient(client), settings, output_topics(settings))
    refstore.publish_directory(settings, workdir / "reference")
    print(f"reference data loaded; topics under prefix {prefix!r} on {bootstrap}")

    logs = open(workdir / "workers.log", "ab")  # noqa: SIM115 - shared by the worker processes
    workers = [localrun.start_worker(env, f"demo-{i}", logs) for i in range(args.workers)]
    try:
        started = time.monotonic()
        total = localrun.feed(settings, workdir / "ingress.jsonl", progress=True)
        localrun.wait_drained(settings, total, timeout=900, progress=True)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        logs.close()

    t = settings.topics
    exchange_topics = readback.topics_matching(client, t.exchange_prefix)
    feedback_topics = readback.topics_matching(client, t.feedback_prefix)
    data = readback.read_all(client, [t.reports, t.dlq, *exchange_topics, *feedback_topics])
    print(_summary(data, t.reports, t.dlq, t.exchange_prefix, feedback_topics, total, elapsed))
    print(_store_answers(settings, workdir / "store"))
    print(f"\nlogs: {workdir / 'workers.log'}; to read an exchange's data:")
    print(f"  LT_TOPICS_EXCHANGE_PREFIX={t.exchange_prefix} lookthrough subscribe --exchange SHFE --idle-exit 3")
    return 0


def _summary(data: dict[str, list[tuple[bytes | None, Any]]], reports: str, dlq: str, exchange_prefix: str,
             feedback_topics: list[str], total: int, elapsed: float) -> str:  # fmt: skip
    accepted = [v for _, v in data[reports]]
    rejected = [v for _, v in data[dlq]]
    feedback = [v for topic in feedback_topics for _, v in data[topic]]
    lines = [f"\n{total} reports in {elapsed:.1f}s ({total / elapsed:,.0f} reports/s end to end): "
             f"{len(accepted)} accepted, {len(rejected)} rejected, "
             f"in = delivered + rejected: {total == len(accepted) + len(rejected)}"]  # fmt: skip
    lines.append("\nper exchange (licensed subscribers only):")
    for topic in sorted(k for k in data if k.startswith(exchange_prefix)):
        lines.append(f"  {topic.removeprefix(exchange_prefix):<6} {len(data[topic]):>7}")
    lines.append("\nrejects by code:")
    for code, n in sorted(Counter(r["error_code"] for r in rejected).items()):
        lines.append(f"  {code} {n:>6}")
    lines.append("\nwarnings by code:")
    warnings = Counter(c for f in feedback if f["status"] == "WARNED" for c in f["codes"])
    for code, n in sorted(warnings.items()):
        lines.append(f"  {code} {n:>6}")
    shared = [(name, investors, fps) for name, (investors, fps) in shared_devices(accepted).items()
              if len(investors) > 1]  # fmt: skip
    shared.sort(key=lambda d: (-len(d[1]), d[0]))
    lines.append(f"\ndevices in lt.reports shared by several investors (一机多户): {len(shared)}; the widest "
                 "(device, investors, fingerprints):")  # fmt: skip
    for name, investors, fingerprints in shared[:5]:
        lines.append(f"  {name[:16]}…  {len(investors)}  {len(fingerprints)}")
    return "\n".join(lines)


def shared_devices(accepted: list[dict[str, Any]]) -> dict[str, tuple[set[str], set[str]]]:
    """Physical device → (its investors, its fingerprints), over accepted TerminalRecords.

    A login that missed an identifier has another fingerprint; the store's linking
    (`pipeline.store.devices.link`) puts a device's fingerprints back together, as in the
    store's `shared-devices` query.
    """
    from pipeline.store.devices import Observation, link

    observations: dict[str, Observation] = {}
    for r in accepted:
        fingerprint = r["device_fingerprint"]
        if fingerprint and fingerprint not in observations:
            observations[fingerprint] = Observation.of(fingerprint, r["terminal_kind"], r)
    device = link(observations.values())
    out: dict[str, tuple[set[str], set[str]]] = {}
    for r in accepted:
        fingerprint = r["device_fingerprint"]
        if fingerprint:
            investors, fingerprints = out.setdefault(device[fingerprint], (set(), set()))
            investors.add(f"{r['broker_id']}:{r['investor_id']}")
            fingerprints.add(fingerprint)
    return out


def _store_answers(settings: Settings, store: Path) -> str:
    """Sink the run's topics into an embedded chdb store under the workdir, then ask it a few questions."""
    import dataclasses

    from pipeline.store import queries
    from pipeline.store.backend import connect
    from pipeline.store.migrations import migrate
    from pipeline.store.policy import Retention
    from pipeline.store.sink import Sink

    ch = dataclasses.replace(settings.clickhouse, host=None, path=store)
    backend = connect(ch)
    try:
        migrate(backend, Retention.from_settings(ch))
        stats = Sink(dataclasses.replace(settings, clickhouse=ch), backend).run(until_caught_up=True, timeout_s=600)
        span = f"SELECT min(trading_day), max(trading_day), today() FROM {backend.database}.reports"
        first, last, today = backend.query(span).rows[0]
        last = max(last, today)  # unreadable rejects (E101) are dated by the day they were rejected
        params = queries.Params(first, last)
        devices, ips, rejects = (queries.run(backend, name, params).dicts()
                                 for name in ("shared-devices", "shared-ips", "reject-rates"))  # fmt: skip
    finally:
        backend.close()
    lines = [f"\nanalytics store (embedded chdb in {store}): {stats.total_rows} rows "
             f"({', '.join(f'{k} {v}' for k, v in sorted(stats.rows.items()))})"]  # fmt: skip
    lines.append(f"\ndevices shared by several investors (一机多户): {len(devices)}; the widest:")
    for d in devices[:5]:
        where = f"{d['investors']} investors at {d['brokers']} brokers"
        lines.append(f"  {d['device'][:16]}…  {where} ({d['terminal_kind']})")
    lines.append(f"\npublic IPs shared by several investors: {len(ips)}; the widest:")
    for ip in ips[:5]:
        lines.append(f"  {ip['public_ip']:<16} {ip['investors']} investors at {ip['brokers']} brokers")
    lines.append("\nreject rate per reporter:")
    for reporter in sorted({r["reporter_id"] for r in rejects}):
        r = next(r for r in rejects if r["reporter_id"] == reporter)
        lines.append(f"  {reporter:<6} {r['reporter_rejects']:>5} of {r['reporter_reports']:>6}"
                     f" ({r['reporter_rejects'] / r['reporter_reports']:.2%})")  # fmt: skip
    lines.append(f"\nmore: lookthrough query --help; e.g. lookthrough query relay-concentration --store {store} "
                 f"--from {first} --to {last}")  # fmt: skip
    return "\n".join(lines)
