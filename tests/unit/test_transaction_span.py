"""How long a worker's transaction takes records, behind a backlog or not (`pipeline.worker.transaction_span_ms`)."""

from __future__ import annotations

from pipeline.config import PipelineSettings
from pipeline.worker import transaction_span_ms


def test_the_commit_interval_until_the_worker_has_been_behind_long_enough_then_the_backlog_interval() -> None:
    settings = PipelineSettings(commit_interval_ms=100, backlog_commit_interval_ms=400, backlog_after_ms=500)
    assert transaction_span_ms(settings, 0) == 100
    assert transaction_span_ms(settings, 499.9) == 100
    assert transaction_span_ms(settings, 500) == 400
    assert transaction_span_ms(settings, 60_000) == 400


def test_a_backlog_interval_not_above_the_commit_interval_changes_nothing() -> None:
    for backlog in (0, 50, 100):
        settings = PipelineSettings(commit_interval_ms=100, backlog_commit_interval_ms=backlog, backlog_after_ms=0)
        assert transaction_span_ms(settings, 10_000) == 100


def test_the_defaults_take_longer_transactions_only_behind_a_backlog() -> None:
    settings = PipelineSettings()
    assert transaction_span_ms(settings, 0) == settings.commit_interval_ms
    assert transaction_span_ms(settings, settings.backlog_after_ms) > settings.commit_interval_ms
