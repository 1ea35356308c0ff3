"""`bench pipeline --repeat`: medians and ranges per configuration, from planted figures."""

from __future__ import annotations

from pipeline.bench.pipeline import PipelineFigures, medians, report


def _run(workers: int, rate: float, p99: float, rss: float) -> PipelineFigures:
    return PipelineFigures("X25519", workers, 30_000, rate, 60_000, 40_000, rate / 2, 100, p99, rss, 150, 30, 250, 180)


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
