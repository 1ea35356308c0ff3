"""`bench pipeline`: medians and ranges per configuration (`--repeat`), and the latency figures
and per-report log (`--latency-log`), from planted figures and planted timings."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.bench.pipeline import PipelineFigures, latency_figures, medians, report, write_latency_log


def _run(workers: int, rate: float, p99: float, rss: float) -> PipelineFigures:
    return PipelineFigures("X25519", workers, 30_000, rate, 60_000, 40_000, rate / 2, 100, p99, p99 / 2, rss, 150, 30,
                           250, 180)  # fmt: skip


RUNS = [_run(1, 6_000, 250, 80), _run(2, 9_000, 600, 70), _run(1, 5_000, 310, 90),
        _run(2, 11_000, 420, 75), _run(1, 5_500, 200, 85), _run(2, 10_500, 900, 72)]  # fmt: skip


def test_medians_take_each_figure_of_a_configuration_separately() -> None:
    one, two = medians(RUNS)
    assert (one.workers, one.pipeline_per_s, one.p99_ms, one.worker_peak_rss_mb) == (1, 5_500, 250, 85)
    assert (two.workers, two.pipeline_per_s, two.p99_ms, two.worker_peak_rss_mb) == (2, 10_500, 600, 72)
    assert two.latency_rate == 5_250  # the median of the runs' half rates, not half of another run's


def test_report_shows_every_run_then_medians_and_ranges() -> None:
    text = report(RUNS)
    assert text.count("X25519") == 6 + 2 + 2
    assert "X25519, 2 worker(s), 3 runs: 9,000–11,000 reports/s, p99 420–900 ms" in text
    assert "median per configuration" not in report(RUNS[:2])  # one run each: nothing to summarize


# 200 reports created 5 ms apart from T0: report i is written by the worker i % 50 ms after its
# creation and visible 100 + i ms after it; report 7 was fed but never seen.
T0 = 1_790_000_000.0
CREATED = {f"r{i:03}".encode(): T0 + i * 0.005 for i in range(200)}
SEEN = {f"r{i:03}".encode(): (T0 + i * 0.005 + (100 + i) / 1000, T0 + i * 0.005 + (i % 50) / 1000)
        for i in range(200) if i != 7}  # fmt: skip


def test_latency_figures_count_the_reports_both_fed_and_seen() -> None:
    figures = latency_figures(CREATED, SEEN, fed=200)
    # 199 seen: visible latencies 100..299 ms without 107, so the median (the 100th) is 200 ms and
    # p99 (the 198th) 298 ms; written latencies 0..49 ms four times each, less one 7: p99 is 49.
    # Timestamps near 1.79e9 s carry ~0.2 µs of float rounding.
    assert figures.fed == 200
    assert math.isclose(figures.p50_ms, 200, abs_tol=1e-3)
    assert math.isclose(figures.p99_ms, 298, abs_tol=1e-3)
    assert math.isclose(figures.p99_written_ms, 49, abs_tol=1e-3)


def test_latency_figures_of_nothing_seen_are_not_numbers() -> None:
    figures = latency_figures(CREATED, {}, fed=200)
    assert math.isnan(figures.p99_ms) and math.isnan(figures.p99_written_ms) and figures.fed == 200


def test_the_latency_log_has_a_line_per_report_seen_in_creation_order(tmp_path: Path) -> None:
    log = tmp_path / "latencies.csv"
    write_latency_log(log, dict(reversed(CREATED.items())), SEEN)
    header, *lines = log.read_text().splitlines()
    assert header == "created_unix_s,written_ms,visible_ms"
    rows = [tuple(float(v) for v in line.split(",")) for line in lines]
    planted = [(T0 + i * 0.005, float(i % 50), float(100 + i)) for i in range(200) if i != 7]
    assert len(rows) == len(planted) == 199
    for row, expected in zip(rows, planted, strict=True):
        assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(row, expected, strict=True)), (row, expected)
