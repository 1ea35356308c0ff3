"""`lookthrough bench codec`: the pure report path per suite, beside the raw-decrypt floor.

For each suite, the same planted blobs are timed twice in one process (one core):
floor = `Keyring.decrypt` alone; path = decode → decrypt → normalize → Avro-encode of
the TerminalRecord. Medians over `repeat` runs; peak RSS of the process at the end.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import schemas
from pipeline.crypto.keyring import Keyring
from pipeline.crypto.suites import blob_suite
from pipeline.generate import PlanConfig, plan_reports
from pipeline.market import MarketConfig, build_market
from pipeline.marketkeys import create_market_keyring
from pipeline.stages import decode, normalize


@dataclass(frozen=True)
class SuiteFigures:
    suite: str
    records: int
    floor_per_s: float
    path_per_s: float

    @property
    def ratio(self) -> float:
        return self.path_per_s / self.floor_per_s


def _rate(count: int, run: Callable[[], None], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def measure_suite(suite: str, records: int, repeat: int, workdir: Path) -> SuiteFigures:
    path, keys = create_market_keyring(workdir / suite, (suite,))
    keyring = Keyring.load(path, "production")
    market = build_market(MarketConfig())
    plans = [
        p for p in plan_reports(market, keys, PlanConfig(reports=records, defect_rate=0.0, correction_rate=0.0))
    ]
    values = [(p.value, p.topic.removeprefix("lt.ingress.")) for p in plans]
    decoded = [decode.decode(value, reporter) for value, reporter in values]
    lines = [d.line for d in decoded]
    label = blob_suite(lines[0].terminal_info).label
    settings = normalize.NormalizeSettings.from_profile()
    now = market.config.epoch_ms + 43_200_000

    def floor() -> None:
        for line in lines:
            keyring.decrypt(line.vendor_id, line.key_version, line.terminal_info, now)

    def full_path() -> None:
        for value, reporter in values:
            d = decode.decode(value, reporter)
            line = d.line
            plaintext = keyring.decrypt(line.vendor_id, line.key_version, line.terminal_info, now)
            record = normalize.normalize(d.envelope, line, plaintext, settings)
            record["suite"] = label
            record["source"] = {"topic": "t", "partition": 0, "offset": 0}
            record["provenance"] = {"source": reporter, "processing_system": "lookthrough",
                                    "pipeline_instance": "bench", "pipeline_version": "0",
                                    "schema_fingerprint": d.schema_fingerprint, "processed_at": now}  # fmt: skip
            schemas.encode("lookthrough.TerminalRecord", record)

    full_path()  # warm caches (schemas, layouts) outside the timing
    return SuiteFigures(label, len(values), _rate(len(values), floor, repeat), _rate(len(values), full_path, repeat))


def run(records: dict[str, int], repeat: int) -> list[SuiteFigures]:
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        return [measure_suite(suite, count, repeat, Path(tmp)) for suite, count in records.items()]


def report(figures: list[SuiteFigures]) -> str:
    rows = [f"{'suite':<34}{'records':>8}{'floor rec/s':>14}{'path rec/s':>13}{'path/floor':>12}"]
    for f in figures:
        rows.append(f"{f.suite:<34}{f.records:>8}{f.floor_per_s:>14,.0f}{f.path_per_s:>13,.0f}{f.ratio:>11.1%}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(f"peak RSS {peak_mb:.0f} MB (one process, one core)")
    return "\n".join(rows)
