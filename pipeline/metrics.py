"""Prometheus metrics of a worker. Labels carry topics and codes only, never report content."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECORDS_IN = Counter("lt_records_in_total", "ingress records consumed", ["topic"])
RECORDS_OUT = Counter("lt_records_out_total", "records produced", ["topic"])
REJECTS = Counter("lt_rejects_total", "rejected reports", ["code"])
WARNINGS = Counter("lt_warnings_total", "warnings on accepted reports", ["code"])
BATCH_SECONDS = Histogram(
    "lt_batch_seconds", "time to process and commit one transaction",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
BATCH_SIZE = Histogram("lt_batch_records", "records per transaction", buckets=(1, 10, 50, 100, 250, 500, 1000, 2000))
LAG = Gauge("lt_consumer_lag", "ingress records not yet processed", ["topic", "partition"])


class LabelCache:
    """Per-label counter children, looked up once: `Counter.labels` costs microseconds per call."""

    def __init__(self) -> None:
        self.children: dict[tuple[int, str], Any] = {}

    def inc(self, counter: Counter, label: str, amount: int = 1) -> None:
        key = (id(counter), label)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = counter.labels(label)
        child.inc(amount)


def serve(port: int) -> None:
    """Expose /metrics on 127.0.0.1:`port` (0 disables it)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
