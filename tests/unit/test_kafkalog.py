"""librdkafka's repeated log lines are held back: one per kind per interval, with a count."""

from __future__ import annotations

import logging

from pipeline.kafkalog import LOGGER, RepeatFilter

REFUSED = ("[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
           "Connection refused (after {}ms in state CONNECT)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(text: str, facility: str = "FAIL", client: str = "rdkafka#consumer-1") -> logging.LogRecord:
    # As confluent-kafka logs a librdkafka line.
    return logging.LogRecord("librdkafka", logging.ERROR, "", 0, "%s [%s] %s", (facility, client, text), None)


def test_repeats_within_the_interval_are_left_out_and_counted_on_the_next_line() -> None:
    clock = Clock()
    repeats = RepeatFilter(interval_s=30, clock=clock)
    passed = []
    for i in range(100):  # 20 a second for 5 s, as librdkafka retries while waiting for metadata
        record = _record(REFUSED.format(i % 2))  # "after 0ms", "after 1ms": one kind
        if repeats.filter(record):
            passed.append(record.getMessage())
        clock.now += 0.05
    assert len(passed) == 1
    assert passed[0].endswith("(after 0ms in state CONNECT)")
    clock.now += 30
    record = _record(REFUSED.format(0))
    assert repeats.filter(record)
    assert record.getMessage().endswith("(99 more like it left out)")
    assert not repeats.filter(_record(REFUSED.format(0)))  # a new interval began with that line


def test_different_kinds_pass_independently() -> None:
    repeats = RepeatFilter(interval_s=30, clock=Clock())
    assert repeats.filter(_record(REFUSED.format(0)))
    assert repeats.filter(_record("1/1 brokers are down", facility="ERROR"))
    assert repeats.filter(_record("other broker: Connect to ipv4#10.0.0.9:9092 failed: Connection refused"))
    assert not repeats.filter(_record(REFUSED.format(3)))
    warning = _record(REFUSED.format(0))
    warning.levelno = logging.WARNING
    assert repeats.filter(warning)


def test_forgotten_kinds_keep_memory_bounded() -> None:
    clock = Clock()
    repeats = RepeatFilter(interval_s=1, clock=clock)
    for i in range(5000):
        repeats.filter(_record(f"topic t{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}{chr(65 + i // 676)} is gone"))
        clock.now += 0.01
    assert len(repeats.kinds) <= 1000


def test_the_clients_logger_holds_the_filter() -> None:
    from pipeline.config import Settings

    assert Settings().kafka.client_config()["logger"] is LOGGER
    assert any(isinstance(f, RepeatFilter) for f in LOGGER.filters)
