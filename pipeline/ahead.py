"""Decrypt ahead: the RSA private-key operations of upcoming records run on other threads.

An RSA-OAEP unwrap costs about 250 µs, against about 80 µs for every other stage of a record
together, and `cryptography` runs it without holding the GIL. So while the worker's thread runs
the stages of record i, a small pool decrypts the RSA blobs of the records after it, and one
worker process uses a second core for the one stage that can use it. The other suites decrypt in
tens of microseconds, less than handing them over would cost, and an X25519 exchange holds the GIL
(two threads run it no faster than one), so they stay inline.

`Lookahead(processor, messages, pool)` opens a consumed batch in order. `opened(i)` returns
record i's `Opened`: before that, it decodes the records up to `i + ahead` in chunks, on this
thread, and submits each chunk's RSA blobs to the pool as one task (a Future per record would
cost more than it saves). The decryption is the keyring's own, so errors and their codes are the
same as inline. An abandoned Lookahead (after an abort) only leaves its tasks to finish unread.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import Message

from pipeline.crypto.suites import Suite
from pipeline.errors import RejectError
from pipeline.process import Decrypting, Opened, Processor

CHUNK = 16  # records decoded per step, and at most this many RSA blobs per task
# A decrypting thread whose RSA operation has ended waits for the GIL until the worker's thread
# lets it go, which a busy thread does only every switch interval: 5 ms by default, the time of
# twenty RSA operations. At 0.2 ms the pool keeps decrypting; `bench pipeline` measured RSA at
# 3,339-3,463 reports/s against 3,050-3,159 with the default (one worker, same runs). Set for the
# whole process, but only once it has met an RSA blob: a worker that decrypts none keeps 5 ms.
SWITCH_INTERVAL_S = 0.0002
_RSA_BYTE = bytes([Suite.RSA])  # a blob's first byte names its suite

Job = tuple[str, int, bytes]  # vendor ID, key version, blob
Outcome = bytes | RejectError


def decrypt_all(keyring: Decrypting, jobs: Sequence[Job], now_ms: int) -> list[Outcome]:
    """Every job's plaintext, or the RejectError it raised (kept, to be raised in order later)."""
    out: list[Outcome] = []
    for vendor_id, key_version, blob in jobs:
        try:
            out.append(keyring.decrypt(vendor_id, key_version, blob, now_ms))
        except RejectError as error:
            out.append(error)
    return out


class _Slot:
    """One record's plaintext in a chunk task's results; calling it waits for the task."""

    __slots__ = ("future", "index")

    def __init__(self, future: Future[list[Outcome]], index: int) -> None:
        self.future, self.index = future, index

    def __call__(self) -> bytes:
        outcome = self.future.result()[self.index]
        if isinstance(outcome, RejectError):
            raise outcome
        return outcome


class Lookahead:
    def __init__(self, processor: Processor, messages: Sequence[Message], pool: ThreadPoolExecutor,
                 now_ms: int, ahead: int) -> None:  # fmt: skip
        self.processor = processor
        self.messages = messages
        self.pool = pool
        self.now_ms = now_ms
        self.ahead = max(ahead, CHUNK)
        self.opened_: list[Opened | None] = []  # per message so far; None for an error event

    def opened(self, index: int) -> Opened | None:
        """Record `index`'s Opened (None for a consumer error event), opening further ahead first."""
        target = min(len(self.messages), index + 1 + self.ahead)
        while len(self.opened_) < target:
            self._open_chunk(min(target, len(self.opened_) + CHUNK))
        return self.opened_[index]

    def _open_chunk(self, end: int) -> None:
        start = len(self.opened_)
        chunk: list[Opened | None] = []
        jobs: list[Job] = []
        waiting: list[int] = []  # positions in `chunk` whose plaintext the task will bring
        for message in self.messages[start:end]:
            if message.error() is not None:
                chunk.append(None)
                continue
            opened = self.processor.open(str(message.topic()), message.value())
            if opened.decoded is not None and opened.decoded.line.terminal_info[:1] == _RSA_BYTE:
                line = opened.decoded.line
                jobs.append((line.vendor_id, line.key_version, line.terminal_info))
                waiting.append(len(chunk))
            chunk.append(opened)
        if jobs:
            if sys.getswitchinterval() > SWITCH_INTERVAL_S:  # once per process, at its first RSA blob
                sys.setswitchinterval(SWITCH_INTERVAL_S)
            future = self.pool.submit(decrypt_all, self.processor.keyring, jobs, self.now_ms)
            for index, position in enumerate(waiting):
                waiter = chunk[position]
                assert waiter is not None
                chunk[position] = waiter.with_plaintext(_Slot(future, index))
        self.opened_.extend(chunk)


def pool(threads: int) -> ThreadPoolExecutor | None:
    """The decrypting pool of a worker, or None (decrypt inline) for `threads` 0."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lt-decrypt") if threads > 0 else None

