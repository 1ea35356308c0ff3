"""Commands against a broker that is not there: a clear error or a quiet wait, never a flood.

No service is needed: the bootstrap address is a loopback port nobody listens on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(60)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "LT_KAFKA_BOOTSTRAP": f"127.0.0.1:{_closed_port()}"}


def test_a_one_shot_command_fails_with_a_message_not_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "topics"], env=_env(), capture_output=True,
                          text=True, timeout=45)  # fmt: skip
    assert done.returncode == 2
    assert "lookthrough: error: Kafka:" in done.stderr
    assert "LT_KAFKA_BOOTSTRAP" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_waiting_subscriber_says_so_once_not_twenty_times_a_second() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "subscribe", "--exchange", "SHFE"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(4)  # librdkafka retries every ~50 ms while it waits for metadata: ~80 attempts
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    refused = [line for line in stderr.splitlines() if "Connection refused" in line]
    assert len(refused) == 1, stderr[-2000:]
