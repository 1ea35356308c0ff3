"""`lookthrough send` against the real broker: a 500-line batch interrupted midway and resumed
holds every report ID exactly once on the ingress topic.

The send runs in a subprocess that a driver crashes at a chosen point: a real SIGKILL (no
cleanup, an open transaction left behind) right after a transaction committed but before the
state file recorded it, or in the middle of a transaction whose records already reached the
broker; or a SIGINT (Ctrl-C, the graceful path). The resumed run must fence the dead producer,
read the topic back where needed, and send only what is missing.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline import schemas
from pipeline.crypto.admin import export_public
from pipeline.marketkeys import create_market_keyring
from pipeline.stages.decode import decode

from .conftest import delete_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
LINES = 500
BATCH = 50
PARTITIONS = 3

# Runs `lookthrough send` and kills itself at a chosen point (argv: mode, count, then the CLI's).
DRIVER = r"""
import os, signal, sys
from pipeline import cli, reporter, send

mode, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = 0
if mode == "after_commit":
    original_committed = send.BatchSender._committed

    def committed(self, report_ids):
        global calls
        calls += 1
        if calls == at:  # the transaction is committed on the broker; the state file never hears of it
            os.kill(os.getpid(), signal.SIGKILL)
        original_committed(self, report_ids)

    send.BatchSender._committed = committed
elif mode in ("mid_transaction", "interrupt"):
    original_produce = reporter.Reporter.produce

    def produce(self, *args, **kwargs):
        global calls
        original_produce(self, *args, **kwargs)
        calls += 1
        if calls == at:
            self.flush(30)  # the open transaction's records reach the broker, uncommitted
            os.kill(os.getpid(), signal.SIGKILL if mode == "mid_transaction" else signal.SIGINT)

    reporter.Reporter.produce = produce
sys.exit(cli.main(argv))
"""


@pytest.fixture(scope="module")
def public_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A reporter's public keyring file and an active key version in it."""
    directory = tmp_path_factory.mktemp("send-keys")
    keyring, keyset = create_market_keyring(directory)
    path = directory / "public.json"
    path.write_text(json.dumps(export_public(keyring, include_psk=True)))
    path.chmod(0o600)
    return path, keyset.active[0]


@pytest.fixture
def ingress(kafka_admin: AdminClient) -> Iterator[tuple[str, str]]:
    """(reporter ID, its ingress topic with 3 partitions), deleted afterwards."""
    reporter = f"T{random.randrange(10**8):08d}"
    topic = f"lt.ingress.{reporter}"
    kafka_admin.create_topics([NewTopic(topic, PARTITIONS, 1)], operation_timeout=10)[topic].result(timeout=15)
    yield reporter, topic
    delete_topics(kafka_admin, [topic])


def write_batch(path: Path, reporter: str, key_version: int) -> list[str]:
    ids = []
    with path.open("w", encoding="utf-8") as fh:
        for i in range(LINES):
            report_id = f"{reporter}-20251120-{i:06d}"
            ids.append(report_id)
            fh.write(json.dumps({
                "report_id": report_id, "investor_id": f"INV{i % 37:04d}", "user_id": f"U{i % 37:04d}",
                "trading_day": "20251120", "vendor_id": "CTP", "app_type": 1, "public_ip": "58.20.30.40",
                "public_port": 40000 + i, "login_time": "2025-11-20 09:00:00", "app_id": "CT_Q7_V1.0.0",
                "key_version": key_version,
                "terminal": {"type": 7, "collect_flags": 0, "fields": {
                    "collect_time": "2025-11-20 08:59:30", "platform": "web", "device_model": "Chrome 131",
                    "os_version": "macOS 15", "device_id": f"web-{i:04d}", "location": "31.23040,121.47370"}},
            }) + "\n")  # fmt: skip
    return ids


def run_send(args: list[str], crash: tuple[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    mode, at = crash or ("none", 0)
    return subprocess.run(
        [sys.executable, "-c", DRIVER, mode, str(at), "send", *args, "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def read_topic(bootstrap: str, topic: str, isolation: str) -> list[tuple[int, bytes, dict[str, Any]]]:
    """(partition, key, envelope) of every record, from the beginning to the end of each partition."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "enable.auto.commit": False,
        "isolation.level": isolation, "enable.partition.eof": True,
    })  # fmt: skip
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: list[tuple[int, bytes, dict[str, Any]]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            _, envelope = schemas.decode(msg.value(), expected="lookthrough.ReportEnvelope")
            out.append((msg.partition(), msg.key(), envelope))
    finally:
        consumer.close()
    assert len(at_end) == PARTITIONS, "did not reach the end of every partition"
    return out


@pytest.mark.parametrize(
    ("crash", "recorded", "found"),
    [
        # SIGKILL right after the 4th commit: 150 recorded, 50 committed but only on the topic.
        (("after_commit", 4), 150, 50),
        # SIGKILL with 30 records of the 4th transaction on the broker, uncommitted.
        (("mid_transaction", 180), 150, 0),
        # Ctrl-C at the same point: the run aborts its transaction and closes the state cleanly.
        (("interrupt", 180), 150, 0),
    ],
    ids=["sigkill-after-commit", "sigkill-mid-transaction", "sigint"],
)
def test_interrupted_send_resumes_without_duplicates(
    kafka_bootstrap: str, ingress: tuple[str, str], public_keys: tuple[Path, int], tmp_path: Path,
    crash: tuple[str, int], recorded: int, found: int,
) -> None:  # fmt: skip
    reporter, topic = ingress
    keys, version = public_keys
    batch = tmp_path / "batch.jsonl"
    ids = write_batch(batch, reporter, version)
    args = [str(batch), "--reporter", reporter, "--keys", str(keys), "--bootstrap", kafka_bootstrap,
            "--batch-size", str(BATCH), "--timeout", "60"]  # fmt: skip

    first = run_send(args, crash)
    if crash[0] == "interrupt":
        assert first.returncode == 130, first.stderr
        summary = json.loads(first.stdout)
        assert (summary["sent"], summary["stopped"]) == (recorded, "interrupted")
    else:
        assert first.returncode == -9, first.stderr
    state_path = tmp_path / "batch.jsonl.sent-state"
    state_lines = state_path.read_text().splitlines()
    transactional_id = json.loads(state_lines[0])["transactional_id"]
    assert sum(len(json.loads(line).get("sent", [])) for line in state_lines[1:]) == recorded

    second = run_send(args)
    assert second.returncode == 0, second.stderr + second.stdout
    summary = json.loads(second.stdout)
    assert summary["failed"] == [] and summary["stopped"] is None
    assert (summary["skipped"], summary["found_on_topic"]) == (recorded + found, found)
    assert summary["sent"] == LINES - recorded - found
    assert json.loads(state_path.read_text().splitlines()[0])["transactional_id"] == transactional_id

    committed = read_topic(kafka_bootstrap, topic, "read_committed")
    counts = Counter(envelope["report_id"] for _, _, envelope in committed)
    assert len(committed) == LINES == len(ids)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    partition_of: dict[bytes, int] = {}
    for partition, key, envelope in committed:
        assert key == envelope["investor_id"].encode() and envelope["reporter_id"] == reporter
        assert partition_of.setdefault(key, partition) == partition  # one investor, one partition
    assert len(set(partition_of.values())) == PARTITIONS
    if crash[0] == "mid_transaction":
        # The killed transaction's records are on the log, aborted: only read_committed hides them.
        assert len(read_topic(kafka_bootstrap, topic, "read_uncommitted")) > LINES

    third = run_send(args)
    assert third.returncode == 0, third.stderr
    again = json.loads(third.stdout)
    assert (again["sent"], again["skipped"], again["found_on_topic"]) == (0, LINES, 0)
    assert len(read_topic(kafka_bootstrap, topic, "read_committed")) == LINES


def test_sent_values_pass_the_decode_stage(
    kafka_bootstrap: str, ingress: tuple[str, str], public_keys: tuple[Path, int], tmp_path: Path
) -> None:
    """A clean run with one bad line: the good lines arrive decodable, the bad one is reported by number."""
    reporter, topic = ingress
    keys, version = public_keys
    batch = tmp_path / "small.jsonl"
    write_batch(batch, reporter, version)
    lines = batch.read_text().splitlines()[:20]
    lines[7] = lines[7].replace('"app_id": "CT_Q7_V1.0.0"', '"app_id": "CT Q7 V1.0.0"')
    batch.write_text("\n".join(lines) + "\n")
    result = run_send([str(batch), "--reporter", reporter, "--keys", str(keys), "--bootstrap", kafka_bootstrap])
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sent"] == 19
    assert [(f["line"], f["code"]) for f in summary["failed"]] == [(8, "E104")]
    records = read_topic(kafka_bootstrap, topic, "read_committed")
    assert len(records) == 19
    consumer_view = [decode(schemas.encode("lookthrough.ReportEnvelope", env), reporter) for _, _, env in records]
    assert all(d.line.key_version == version for d in consumer_view)
