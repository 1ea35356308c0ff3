"""The worker's pause after aborted transactions in a row (`pipeline.worker.abort_backoff`)."""

from __future__ import annotations

from itertools import pairwise

from pipeline.worker import abort_backoff


def test_a_single_abort_is_retried_at_once_and_a_run_of_them_backs_off_doubling_to_five_seconds() -> None:
    pauses = [abort_backoff(n) for n in range(1, 11)]
    assert pauses[0] == 0.0
    assert pauses[1] == 0.1
    for earlier, later in pairwise(pauses[1:]):
        assert later == min(2 * earlier, 5.0)
    assert pauses[-1] == 5.0
    assert abort_backoff(10_000) == 5.0  # no overflow however long the failure lasts
