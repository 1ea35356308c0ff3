"""Decrypting ahead changes nothing but where RSA blobs are decrypted: over a generated market with
every suite and every defect class, a worker's Lookahead gives each record exactly the outputs
and the code that inline processing gives it; the RSA blobs (and only they) are decrypted on the
pool's threads; and a record that fails to decrypt there is rejected with the same code.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline.ahead import CHUNK, SWITCH_INTERVAL_S, Lookahead, Threads
from pipeline.crypto.lanes import Job, Outcome, decrypt_all
from pipeline.crypto.suites import Suite
from pipeline.errors import RejectError
from pipeline.generate import PlanConfig, plan_reports

from .conftest import NOW_MS, Kit


@dataclass
class Record:
    """What Lookahead reads of a consumed message."""

    topic_: str
    value_: bytes | None
    error_: Any = None

    def topic(self) -> str:
        return self.topic_

    def value(self) -> bytes | None:
        return self.value_

    def error(self) -> Any:
        return self.error_


class CountingKeyring:
    """The kit's keyring, noting which suite each decryption was of and on which thread."""

    def __init__(self, keyring: Any) -> None:
        self.keyring = keyring
        self.calls: list[tuple[int, bool, str | None]] = []  # suite byte, on the pool, error code

    def decrypt(self, vendor_id: str, key_version: int, blob: bytes, now_ms: int | None = None) -> bytes:
        on_pool = threading.current_thread().name.startswith("lt-decrypt")
        suite = blob[0] if blob else -1
        try:
            plaintext = bytes(self.keyring.decrypt(vendor_id, key_version, blob, now_ms))
        except RejectError as error:
            self.calls.append((suite, on_pool, error.code))
            raise
        self.calls.append((suite, on_pool, None))
        return plaintext


@pytest.fixture(autouse=True)
def _switch_interval() -> Iterator[None]:
    """Decrypting ahead shortens the interpreter's switch interval: restore it for other tests."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)


def test_decrypting_ahead_gives_every_record_what_inline_processing_gives(kit: Kit) -> None:
    plans = list(plan_reports(kit.market, kit.keys, PlanConfig(reports=600, defect_rate=0.01, seed=11)))
    records: list[Any] = [Record(p.topic, p.value) for p in plans]
    records.insert(5, Record("", None, error_="a consumer error event"))  # skipped, as the worker skips it

    inline = kit.processor()
    expected = [inline.process(p.topic, 0, i, p.key, p.value, NOW_MS) for i, p in enumerate(plans)]

    ahead = kit.processor()
    counting = CountingKeyring(ahead.keyring)
    ahead.keyring = counting
    threads = Threads(counting, 2)
    try:
        lookahead = Lookahead(ahead, records, threads, NOW_MS, ahead=4 * CHUNK)
        got = []
        for i, record in enumerate(records):
            opened = lookahead.opened(i)
            if record.error_ is not None:
                assert opened is None
                continue
            plan = plans[len(got)]
            got.append(ahead.process(record.topic_, 0, len(got), plan.key, record.value_, NOW_MS, opened))
    finally:
        threads.close()
    assert [(r.code, r.warnings, r.outputs) for r in got] == [(r.code, r.warnings, r.outputs) for r in expected]
    assert [r.code for r in got] == [p.truth.code for p in plans]  # the generator's ground truth
    on_pool = {suite for suite, pool_thread, _ in counting.calls if pool_thread}
    inline_suites = {suite for suite, pool_thread, _ in counting.calls if not pool_thread}
    assert on_pool == {Suite.RSA} and Suite.RSA not in inline_suites and {Suite.X25519, Suite.SM4} <= inline_suites
    pool_rejects = {code for suite, pool_thread, code in counting.calls if pool_thread and code}
    assert pool_rejects & {"E202", "E204", "E205"}, "some RSA blob failed to decrypt on the pool"
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)


class RecordingDecrypter:
    """Decrypts inline, noting how many blobs each task held."""

    width = 2

    def __init__(self, keyring: Any) -> None:
        self.keyring = keyring
        self.tasks: list[int] = []

    def submit(self, jobs: list[Job], now_ms: int) -> Callable[[], list[Outcome]]:
        self.tasks.append(len(jobs))
        outcomes = decrypt_all(self.keyring, jobs, now_ms)
        return lambda: outcomes

    def close(self) -> None:
        pass


def test_rsa_blobs_go_out_a_whole_chunk_per_task(kit: Kit) -> None:
    """A task per chunk of CHUNK records, all the way through a batch: a task per record would cost
    a pipe round (or a thread hand-over) per RSA blob."""
    records: list[Any] = [Record(kit.topic(), kit.value(kit.plaintext(1), suite=Suite.RSA))
                          for _ in range(10 * CHUNK + 5)]  # fmt: skip
    recording = RecordingDecrypter(kit.keyring)
    lookahead = Lookahead(kit.processor(), records, recording, NOW_MS, ahead=4 * CHUNK)
    for i in range(len(records)):
        opened = lookahead.opened(i)
        assert opened is not None and opened.plaintext is not None
        opened.plaintext()
    assert recording.tasks == [CHUNK] * 10 + [5]
