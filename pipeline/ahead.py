"""Decrypt ahead: the RSA private-key operations of upcoming records run beside the worker's thread.

An RSA-OAEP unwrap costs about 250 µs, against about 80 µs for every other stage of a record
together. So while the worker's thread runs the stages of record i, the RSA blobs of the records
after it are decrypted elsewhere, and one worker uses a second core for the one stage that can
use it. The other suites decrypt in tens of microseconds, less than handing them over would
cost, so they stay inline.

Two kinds of helper (`Decrypter`):

- `Processes` (what `lookthrough run` uses): child processes (`pipeline.crypto.lanes`), each
  loading the keyring itself from its file, so no key material crosses a pipe. A chunk of blobs
  goes down a pipe and its plaintexts come back (an anonymous pipe between the worker's own
  processes: nothing is written anywhere), sent and read by the worker's own thread, so no other
  thread of the worker takes the GIL for it. The children end with the worker (a closed pipe,
  or the parent's death signal if it was killed). One worker: 94-116 % of the RSA crypto floor
  and 317-344 µs of CPU per report, where threads gave 77-87 % and 367-422 µs (`bench pipeline
  --suites rsa --workers 1`, interleaved runs; README, session 14).
- `Threads`: a thread pool in the worker's process. `cryptography` releases the GIL for the RSA
  operation, but each hand-over of the GIL between the decrypting threads and the worker's thread
  costs CPU and waits (~490 µs of CPU per RSA report against ~400 inline). Used when the keyring
  is not in a file (tests) or `LT_PIPELINE_DECRYPT_PROCESSES` is 0.

`Lookahead(processor, messages, decrypter)` opens a consumed batch in order. `opened(i)` returns
record i's `Opened`: before that, it decodes the records up to `i + ahead` in chunks, on this
thread, and hands each chunk's RSA blobs over as one task (a task per record would cost a pipe
round or a thread hand-over per blob). The decryption is the keyring's own, so errors and their
codes are the same as inline. An abandoned Lookahead (after an abort) leaves its tasks to finish
unread (a lane reads their outcomes past: `pipeline.crypto.lanes.MOST_IN_FLIGHT`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from confluent_kafka import Message

from pipeline.crypto.lanes import Job, KeyringSource, Lane, Outcome, decrypt_all
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

class Decrypter(Protocol):
    width: int  # tasks decrypted at once

    def submit(self, jobs: list[Job], now_ms: int) -> Callable[[], list[Outcome]]:
        """Start decrypting `jobs`; the returned call waits for their outcomes."""
        ...

    def close(self) -> None: ...


class Threads:
    """Decrypting threads in the worker's process (see the module docstring)."""

    def __init__(self, keyring: Decrypting, threads: int) -> None:
        self.keyring = keyring
        self.width = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lt-decrypt")

    def submit(self, jobs: list[Job], now_ms: int) -> Callable[[], list[Outcome]]:
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:  # once per process, at its first RSA blob
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        future: Future[list[Outcome]] = self.pool.submit(decrypt_all, self.keyring, jobs, now_ms)
        return future.result

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)  # decrypting ahead of an end: unneeded


class Processes:
    """Decrypting child processes (see the module docstring); tasks go round them in turn. They
    start with the first task (a worker that meets no RSA blob starts none) or `start()`."""

    def __init__(self, source: KeyringSource, processes: int) -> None:
        self.source = source
        self.width = processes
        self.lanes: list[Lane] = []
        self.turn = 0

    def start(self) -> None:
        if not self.lanes:
            self.lanes = [Lane(self.source) for _ in range(self.width)]

    def submit(self, jobs: list[Job], now_ms: int) -> Callable[[], list[Outcome]]:
        self.start()
        lane = self.lanes[self.turn]
        self.turn = (self.turn + 1) % len(self.lanes)
        return lane.submit(jobs, now_ms)

    def close(self) -> None:
        for lane in self.lanes:
            lane.close()


def decrypter(keyring: Decrypting, source: KeyringSource | None, processes: int, threads: int) -> Decrypter | None:
    """The worker's decrypter: processes if it has a keyring source and `processes` > 0, else
    threads if `threads` > 0, else None (decrypt inline)."""
    if source is not None and processes > 0:
        return Processes(source, processes)
    if threads > 0:
        return Threads(keyring, threads)
    return None


class _Slot:
    """One record's plaintext in a chunk task's outcomes; calling it waits for the task."""

    __slots__ = ("index", "outcomes")

    def __init__(self, outcomes: Callable[[], list[Outcome]], index: int) -> None:
        self.outcomes, self.index = outcomes, index

    def __call__(self) -> bytes:
        outcome = self.outcomes()[self.index]
        if isinstance(outcome, RejectError):
            raise outcome
        return outcome


class Lookahead:
    def __init__(self, processor: Processor, messages: Sequence[Message], decrypter: Decrypter,
                 now_ms: int, ahead: int) -> None:  # fmt: skip
        self.processor = processor
        self.messages = messages
        self.decrypter = decrypter
        self.now_ms = now_ms
        self.ahead = max(ahead, CHUNK)
        self.opened_: list[Opened | None] = []  # per message so far; None for an error event

    def opened(self, index: int) -> Opened | None:
        """Record `index`'s Opened (None for a consumer error event), first opening whole chunks
        until at least `ahead` records after it are open. (Opening only up to that mark made a
        task of every record once the first chunks were out: an IPC round per RSA blob.)"""
        target = min(len(self.messages), index + 1 + self.ahead)
        while len(self.opened_) < target:
            self._open_chunk(min(len(self.messages), len(self.opened_) + CHUNK))
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
            outcomes = self.decrypter.submit(jobs, self.now_ms)
            for index, position in enumerate(waiting):
                waiter = chunk[position]
                assert waiter is not None
                chunk[position] = waiter.with_plaintext(_Slot(outcomes, index))
        self.opened_.extend(chunk)
