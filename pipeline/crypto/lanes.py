"""Decrypting lanes: a child process that decrypts tasks of blobs sent down a pipe (`pipeline.ahead`).

The child loads the keyring itself (a pickled module-level callable, `Keyring.load` with the
file's path), so no key material crosses the pipe; this module imports little else, so a child
starts in a fraction of a second and stays small. A task is a list of (vendor ID, key version,
blob) with the time to judge key validity by; its outcomes come back in order: each plaintext, or
the RejectError its decryption raised. Only the worker's own thread writes and reads the pipe.
The child ends when the pipe closes, or with its parent (Linux: the parent-death signal); it
ignores SIGINT and SIGTERM, which are the worker's to act on.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from pipeline.errors import RejectError

if TYPE_CHECKING:
    from pipeline.process import Decrypting

Job = tuple[str, int, bytes]  # vendor ID, key version, blob
Outcome = bytes | RejectError
KeyringSource = Callable[[], "Decrypting"]
"""Loads the keyring in a child process; it is pickled, so a module-level callable (a partial of
`Keyring.load` with the file's path), never a keyring."""


def decrypt_all(keyring: Decrypting, jobs: Sequence[Job], now_ms: int) -> list[Outcome]:
    """Every job's plaintext, or the RejectError it raised (kept, to be raised in order later)."""
    out: list[Outcome] = []
    for vendor_id, key_version, blob in jobs:
        try:
            out.append(keyring.decrypt(vendor_id, key_version, blob, now_ms))
        except RejectError as error:
            out.append(error)
    return out


class DecrypterFailed(RuntimeError):
    """A decrypting process failed or ended; the worker cannot go on without it."""


# Tasks a lane has sent but whose outcomes have not been read. The worker reads its tasks in
# order, but after an abort it leaves those of the abandoned batch unread; a new task first reads
# older outcomes past this many. Then the unread outcomes (16 plaintexts of at most 1 KB each per
# task) always fit the pipe's buffer (a socket pair's, 208 KB here), so the child never waits to
# send while the worker waits to send it more: no deadlock however many batches are abandoned.
MOST_IN_FLIGHT = 4


class Lane:
    """One decrypting child process and the pipe to it. Outcomes come back in the order the tasks
    were sent, each with its task's sequence number; those of abandoned tasks are read and dropped."""

    def __init__(self, source: KeyringSource) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: the worker has librdkafka threads
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, source), name="lt-decrypt", daemon=True)
        self.process.start()
        child.close()
        self.sent = 0
        self.received = 0
        self.ready: dict[int, list[Outcome]] = {}  # outcomes read ahead of their task's turn

    def submit(self, jobs: list[Job], now_ms: int) -> Callable[[], list[Outcome]]:
        while self.sent - self.received >= MOST_IN_FLIGHT:
            self._take()
        sequence = self.sent
        self.sent += 1
        try:
            self.conn.send((sequence, jobs, now_ms))
        except OSError as error:
            raise self._gone(error) from None
        outcomes: list[list[Outcome]] = []

        def wait() -> list[Outcome]:
            if not outcomes:
                outcomes.append(self._receive(sequence))
            return outcomes[0]

        return wait

    def _receive(self, sequence: int) -> list[Outcome]:
        while sequence not in self.ready:
            self._take()
        # Tasks are waited for in the order sent, so any older outcome still here was abandoned.
        for older in [s for s in self.ready if s < sequence]:
            del self.ready[older]
        return self.ready.pop(sequence)

    def _take(self) -> None:
        """Read the next outcome into `ready`."""
        try:
            answered, outcome = self.conn.recv()
        except (EOFError, OSError) as error:
            raise self._gone(error) from None
        if isinstance(outcome, str):
            raise DecrypterFailed(f"decrypting process {self.process.pid} failed: {outcome}")
        self.received += 1
        self.ready[answered] = outcome

    def _gone(self, error: Exception) -> DecrypterFailed:
        return DecrypterFailed(f"decrypting process {self.process.pid} is gone ({type(error).__name__})")

    def close(self) -> None:
        self.conn.close()  # the child reads the end of its pipe and exits
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1)


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when its parent dies (a SIGKILLed worker
    leaves no decrypting children behind); elsewhere the closed pipe ends it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _serve(conn: Connection, source: KeyringSource) -> None:
    """A decrypting child: load the keyring, then decrypt tasks until the pipe closes. A failure
    is sent back by its type's name only: a message could hold what was being decrypted."""
    _die_with_parent()
    # A terminal's Ctrl-C, or a service manager's SIGTERM to the whole group, is the worker's to
    # handle: it finishes its batch (which may need this child) and then closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        keyring = source()
    except Exception as error:  # reported to the worker, which stops
        with contextlib.suppress(OSError):
            conn.send((-1, f"loading the keyring: {type(error).__name__}"))
        return
    while True:
        try:
            sequence, jobs, now_ms = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: list[Outcome] | str = decrypt_all(keyring, jobs, now_ms)
        except Exception as error:  # a bug: the worker stops
            answer = type(error).__name__
        try:
            conn.send((sequence, answer))
        except OSError:
            return
