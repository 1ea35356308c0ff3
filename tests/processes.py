"""Test helper: waiting for processes to end."""

from __future__ import annotations

import time
from pathlib import Path


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie has ended: only its parent's wait is missing)."""
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    """Those of `pids` still running after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if running(pid)]
