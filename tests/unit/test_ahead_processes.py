"""Decrypting ahead in child processes: the same outcomes as inline decryption, errors with their
codes, the outcomes of abandoned tasks read past (however many: the pipe never stalls), no child
outliving its worker (closed or killed), SIGTERM left to the worker, and a child that dies or
cannot load the keyring stopping the worker with a typed error that names no path or value.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.ahead import CHUNK, Lookahead, Processes
from pipeline.crypto.keyring import Keyring
from pipeline.crypto.lanes import DecrypterFailed, Job
from pipeline.crypto.suites import MAX_PLAINTEXT, Suite
from pipeline.errors import DecryptError, RejectError
from pipeline.generate import PlanConfig, plan_reports

from ..processes import running, wait_gone
from .conftest import NOW_MS, Kit
from .test_ahead import CountingKeyring, Record


def _rsa_jobs(kit: Kit, count: int) -> list[tuple[Job, bytes]]:
    """(job, its plaintext) for `count` RSA blobs sealed by the kit."""
    code = next(iter(kit.spec_layouts))
    first_field = kit.spec_layouts[code][1]
    jobs = []
    for i in range(count):
        plaintext = kit.plaintext(code, **{first_field: f"value-{i}"})
        version, blob = kit.seal(plaintext, Suite.RSA)
        jobs.append(((kit.vendor_id, version, blob), plaintext))
    return jobs


@pytest.fixture
def source(kit: Kit) -> functools.partial[Keyring]:
    return functools.partial(Keyring.load, kit.keyring_path, "production")


def test_processes_give_every_record_what_inline_processing_gives(kit: Kit, source: functools.partial[Keyring]) -> None:
    plans = list(plan_reports(kit.market, kit.keys, PlanConfig(reports=400, defect_rate=0.01, seed=12)))
    records = [Record(p.topic, p.value) for p in plans]
    inline = kit.processor()
    expected = [inline.process(p.topic, 0, i, p.key, p.value, NOW_MS) for i, p in enumerate(plans)]
    suites = [o.decoded.line.terminal_info[:1] for o in (inline.open(p.topic, p.value) for p in plans) if o.decoded]
    assert suites.count(bytes([Suite.RSA])) > 20

    processes = Processes(source, 2)
    try:
        ahead = kit.processor()
        counting = CountingKeyring(ahead.keyring)
        ahead.keyring = counting
        lookahead = Lookahead(ahead, records, processes, NOW_MS, ahead=4 * CHUNK)
        got = [ahead.process(p.topic, 0, i, p.key, p.value, NOW_MS, lookahead.opened(i)) for i, p in enumerate(plans)]
        pids = [lane.process.pid for lane in processes.lanes]
        assert all(pid is not None and pid != os.getpid() for pid in pids)
    finally:
        processes.close()
    assert [(r.code, r.warnings, r.outputs) for r in got] == [(r.code, r.warnings, r.outputs) for r in expected]
    assert [r.code for r in got] == [p.truth.code for p in plans]  # the generator's ground truth
    here = {suite for suite, _, _ in counting.calls}
    assert Suite.RSA not in here and {Suite.X25519, Suite.SM4} <= here  # RSA only in the children
    assert wait_gone([pid for pid in pids if pid is not None]) == []


def test_a_failed_decryption_comes_back_as_its_reject_error(kit: Kit, source: functools.partial[Keyring]) -> None:
    (job, plaintext), (bad, _) = _rsa_jobs(kit, 2)
    vendor, version, blob = bad
    tampered = (vendor, version, blob[:-1] + bytes([blob[-1] ^ 1]))
    unknown = (vendor, 9999, blob)
    processes = Processes(source, 1)
    try:
        outcomes = processes.submit([job, tampered, unknown], NOW_MS)()
    finally:
        processes.close()
    assert outcomes[0] == plaintext
    assert isinstance(outcomes[1], DecryptError) and outcomes[1].code == "E204"
    assert isinstance(outcomes[2], DecryptError) and outcomes[2].code == "E201"
    assert isinstance(outcomes[1], RejectError) and outcomes[1].stage == "decrypt"


def test_outcomes_of_abandoned_tasks_are_read_past(kit: Kit, source: functools.partial[Keyring]) -> None:
    jobs = _rsa_jobs(kit, 3)
    processes = Processes(source, 1)
    try:
        processes.submit([jobs[0][0]], NOW_MS)  # abandoned: never waited for
        processes.submit([jobs[1][0]], NOW_MS)  # abandoned too
        wanted = processes.submit([jobs[2][0]], NOW_MS)
        assert wanted() == [jobs[2][1]]
        assert wanted() == [jobs[2][1]]  # the same outcomes on every call
    finally:
        processes.close()


def test_decrypting_children_die_with_a_killed_worker(kit: Kit, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import functools, sys, time
        from pipeline.ahead import Processes
        from pipeline.crypto.keyring import Keyring
        processes = Processes(functools.partial(Keyring.load, {str(kit.keyring_path)!r}, "production"), 2)
        processes.start()
        print(" ".join(str(lane.process.pid) for lane in processes.lanes), flush=True)
        time.sleep(60)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        pids = [int(pid) for pid in worker.stdout.readline().split()]
        assert len(pids) == 2 and all(running(pid) for pid in pids)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert wait_gone(pids) == []
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_decrypting_process_that_dies_stops_the_worker_with_a_typed_error(
    kit: Kit, source: functools.partial[Keyring]
) -> None:
    (job, plaintext), (other, _) = _rsa_jobs(kit, 2)
    processes = Processes(source, 1)
    try:
        assert processes.submit([job], NOW_MS)() == [plaintext]
        lane = processes.lanes[0]
        assert lane.process.pid is not None
        os.kill(lane.process.pid, signal.SIGKILL)  # the kernel's OOM killer, say
        lane.process.join(10)
        with pytest.raises(DecrypterFailed, match="is gone"):
            processes.submit([other], NOW_MS)()
    finally:
        processes.close()


def test_a_keyring_a_child_cannot_load_is_reported_by_its_error_type_only(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-keyring"
    processes = Processes(functools.partial(Keyring.load, missing, "production"), 1)
    try:
        with pytest.raises(DecrypterFailed, match=r"loading the keyring: ConfigError$") as failure:
            processes.submit([("CTP", 1, b"\x03" + bytes(300))], NOW_MS)()
        assert str(missing) not in str(failure.value)
    finally:
        processes.close()


def test_a_decrypting_process_leaves_sigterm_to_its_worker(kit: Kit, source: functools.partial[Keyring]) -> None:
    """A service manager's SIGTERM to the worker's whole group: the worker finishes its batch, so its
    children must still decrypt until it closes them."""
    (first, first_plaintext), (second, second_plaintext) = _rsa_jobs(kit, 2)
    processes = Processes(source, 1)
    try:
        assert processes.submit([first], NOW_MS)() == [first_plaintext]
        pid = processes.lanes[0].process.pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.2)
        assert processes.submit([second], NOW_MS)() == [second_plaintext]
    finally:
        processes.close()
    assert wait_gone([pid]) == []


def test_batches_abandoned_one_after_another_never_stall_the_pipe(kit: Kit, source: functools.partial[Keyring]) -> None:
    """After aborts, the outcomes of abandoned tasks stay unread. 60 tasks of 16 plaintexts of the
    largest size (about 1 MB of outcomes, more than the pipe's buffers in both directions) sent
    with only the last waited for: the lane reads older outcomes past as it goes, so neither side
    ever waits for the other to read."""
    version = kit.versions[Suite.RSA]
    plaintext = b"x" * MAX_PLAINTEXT
    jobs: list[Job] = [(kit.vendor_id, version, kit.keys.reporter.encrypt(kit.vendor_id, version, plaintext))
                       for _ in range(16)]  # fmt: skip
    last = plaintext[:-1] + b"y"
    final: list[Job] = [(kit.vendor_id, version, kit.keys.reporter.encrypt(kit.vendor_id, version, last))]
    processes = Processes(source, 1)
    got: list[Any] = []

    def abandon_and_wait() -> None:
        for _ in range(60):
            processes.submit(jobs, NOW_MS)  # abandoned
        got.append(processes.submit(final, NOW_MS)())

    thread = threading.Thread(target=abandon_and_wait, daemon=True)
    thread.start()
    thread.join(60)
    stalled = thread.is_alive()
    if stalled:
        processes.lanes[0].process.kill()  # unblocks the thread's send or receive
        thread.join(10)
    processes.close()
    assert not stalled, "the worker and its decrypting process both waited to send"
    assert got == [[last]]
