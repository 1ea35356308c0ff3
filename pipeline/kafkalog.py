"""librdkafka's log lines go through Python logging (`LOGGER`), each kind at most once per interval.

Why: librdkafka logs every failed connection attempt, and while the application waits for
metadata it tries again every 50 ms, so a `subscribe` or a worker started before its broker
wrote 20 identical lines a second to stderr. Through Python logging the lines also take the
worker's JSON format. `Settings.kafka.client_config()` hands `LOGGER` to every client; librdkafka
then delivers its lines on the thread that polls the client.

A line of the same kind (client, facility and text with its digits ignored, so "after 0ms" and
"after 1ms" are one kind) is passed once; its repeats within `interval_s` are counted, and the
next line of that kind after the interval says how many were left out.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

_DIGITS = re.compile(r"\d+")
# Kinds remembered at most; past this, those whose interval has ended are forgotten.
_MAX_KINDS = 1000


class RepeatFilter(logging.Filter):
    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self.kinds: dict[tuple[object, ...], tuple[float, int]] = {}  # kind → (passed at, repeats left out since)
        self.lock = threading.Lock()  # librdkafka lines arrive on whichever thread polls a client

    def filter(self, record: logging.LogRecord) -> bool:
        key = _kind(record)
        now = self.clock()
        with self.lock:
            passed_at, left_out = self.kinds.get(key, (None, 0))
            if passed_at is not None and now - passed_at < self.interval_s:
                self.kinds[key] = (passed_at, left_out + 1)
                return False
            if passed_at is None and len(self.kinds) >= _MAX_KINDS:
                self.kinds = {k: e for k, e in self.kinds.items() if now - e[0] < self.interval_s}
            self.kinds[key] = (now, 0)
        if left_out:
            record.msg = f"{record.msg} (%d more like it left out)"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), left_out)
        return True


def _kind(record: logging.LogRecord) -> tuple[object, ...]:
    # confluent-kafka logs ("%s [%s] %s", (facility, client name, text)).
    args = record.args if isinstance(record.args, tuple) else ()
    return (record.levelno, record.msg, *(_DIGITS.sub("#", a) if isinstance(a, str) else a for a in args))


LOGGER = logging.getLogger("librdkafka")
LOGGER.addFilter(RepeatFilter())
