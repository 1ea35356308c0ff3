"""ClickHouse stopped while the sink runs: after it returns, nothing is lost and nothing duplicated.

The test starts its own ClickHouse server (infra/clickhouse/start on free ports under a private
LT_RUN_DIR), so stopping it cannot disturb anyone else's server. A `lookthrough store sink`
process stores a namespace's topics while records keep arriving; the server is stopped with
infra/clickhouse/stop for OUTAGE_S seconds (60, as the issue asks; LT_TEST_STORE_OUTAGE_S sets
another length) and started again. The sink retries with capped back-off, set to 2 s here.

Expected rows are the records produced (pipeline outputs computed in this process with the
project's `Processor`, exactly what workers would produce), never what the store says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from pipeline import schemas
from pipeline.store.bench import processed_outputs

from .pipeline_support import free_ports, namespace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_S = float(os.environ.get("LT_TEST_STORE_OUTAGE_S", "60"))
REPORTS = 3000
PRODUCE_S = OUTAGE_S + 14  # records keep arriving before, during and after the outage


class PrivateClickHouse:
    def __init__(self, run_dir: Path) -> None:
        tcp, http, interserver = free_ports(3)
        self.port = tcp
        self.env = {**os.environ, "LT_RUN_DIR": str(run_dir), "LT_CLICKHOUSE_TCP_PORT": str(tcp),
                    "LT_CLICKHOUSE_HTTP_PORT": str(http),
                    "LT_CLICKHOUSE_INTERSERVER_PORT": str(interserver)}  # fmt: skip

    def _script(self, name: str) -> None:
        done = subprocess.run([str(ROOT / "infra" / "clickhouse" / name)], env=self.env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, f"infra/clickhouse/{name}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture(scope="module")
def private_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateClickHouse]:
    server = PrivateClickHouse(tmp_path_factory.mktemp("private-clickhouse-run"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_clickhouse_outage_loses_nothing_and_duplicates_nothing(
    kafka_bootstrap: str, private_clickhouse: PrivateClickHouse, tmp_path: Path
) -> None:
    from clickhouse_driver import Client

    outputs = processed_outputs(REPORTS)
    reports = {schemas.decode(v)[1]["report_id"] for topic, _, v in outputs if topic == "reports"}
    deliveries = set()
    dead: Counter[tuple[str, int, int]] = Counter()
    for topic, _, value in outputs:
        datum = schemas.decode(value)[1]
        if topic.startswith("exchange."):
            deliveries.add((datum["exchange"], datum["report_id"]))
        elif topic == "dlq":
            dead[(datum["topic"], datum["partition"], datum["offset"])] += 1
    database = f"lt_outage_{uuid.uuid4().hex[:8]}"

    with namespace(kafka_bootstrap, tmp_path, "unused-keyring") as ns:
        env = {**ns.env, "LT_CLICKHOUSE_HOST": "127.0.0.1", "LT_CLICKHOUSE_PORT": str(private_clickhouse.port),
               "LT_CLICKHOUSE_DATABASE": database, "LT_CLICKHOUSE_BATCH_ROWS": "500",
               "LT_CLICKHOUSE_FLUSH_INTERVAL_MS": "200", "LT_CLICKHOUSE_RETRY_MAX_MS": "2000",
               "LT_CLICKHOUSE_SINK_GROUP": f"{ns.settings.kafka.group}.outage"}  # fmt: skip
        log = open(tmp_path / "sink.log", "wb")  # noqa: SIM115 - the child writes to it
        sink = subprocess.Popen([sys.executable, "-m", "pipeline", "store", "sink"], env={**os.environ, **env},
                                stdout=log, stderr=log)  # fmt: skip
        prefix = ns.settings.topics.reports.removesuffix("reports")

        undelivered: list[int] = []

        def produce() -> None:
            producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 5})
            start = time.monotonic()
            for i, (topic, key, value) in enumerate(outputs):
                producer.produce(prefix + topic, value, key=key)
                producer.poll(0)
                time.sleep(max(0.0, start + PRODUCE_S * i / len(outputs) - time.monotonic()))
            undelivered.append(producer.flush(120))

        feeder = threading.Thread(target=produce)
        try:
            feeder.start()
            time.sleep(6)  # the sink joins its group and stores the first batches
            private_clickhouse.stop()
            time.sleep(1.5)
            rss_at_stop = rss_mb(sink.pid)
            time.sleep(max(0.0, OUTAGE_S - 1.5))
            rss_before_restart = rss_mb(sink.pid)
            private_clickhouse.start()
            feeder.join(PRODUCE_S + 180)
            assert undelivered == [0], "the test's producer did not deliver every record"
            client = Client(host="127.0.0.1", port=private_clickhouse.port)
            deadline = time.monotonic() + 120
            stored = -1
            while time.monotonic() < deadline and stored != len(reports):
                time.sleep(1)
                stored = client.execute(f"SELECT count() FROM {database}.reports FINAL")[0][0]
            time.sleep(2)  # anything still in flight would show up as a duplicate now
            sink.send_signal(signal.SIGTERM)
            assert sink.wait(60) == 0
        finally:
            if sink.poll() is None:
                sink.kill()
            log.close()
        logs = (tmp_path / "sink.log").read_text(errors="replace")

        def column(sql: str) -> list[Any]:
            return [row[0] if len(row) == 1 else row for row in client.execute(sql.format(db=database))]

        try:
            got_reports = column("SELECT report_id FROM {db}.reports FINAL")
            got_deliveries = column("SELECT exchange, report_id FROM {db}.deliveries FINAL")
            got_dead = column("SELECT source_topic, source_partition, source_offset FROM {db}.dlq FINAL")
            raw = column("SELECT count() FROM {db}.reports")[0]
        finally:
            client.execute(f"DROP DATABASE IF EXISTS {database}")
            client.disconnect()

    events = "\n".join(line for line in logs.splitlines() if "clickhouse_driver" not in line)
    assert "store unavailable; retrying" in logs and "consumption paused" in logs, events[-3000:]
    missing = sorted(reports - set(got_reports))
    assert not missing, f"{len(missing)} missing, e.g. {missing[:5]}; stored={stored} when stopped\n{events[-4000:]}"
    assert len(got_reports) == len(set(got_reports)) == len(reports) and set(got_reports) == reports
    assert len(got_deliveries) == len(deliveries) and set(got_deliveries) == deliveries
    assert Counter(tuple(x) for x in got_dead) == dead
    assert raw >= len(reports)  # rows reread after the outage may sit there until merged, never counted
    # Paused, the sink holds its batches and librdkafka's bounded prefetch, whatever keeps arriving.
    assert rss_before_restart - rss_at_stop < 100, (rss_at_stop, rss_before_restart)


class FlakyBackend:
    """The embedded store, unavailable while `down` is set (as a server would be)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.database = inner.database
        self.capabilities = inner.capabilities
        self.down = threading.Event()

    def _check(self) -> None:
        from pipeline.store.errors import StoreUnavailable

        if self.down.is_set():
            raise StoreUnavailable("down for the test")

    def execute(self, sql: str) -> None:
        self.inner.execute(sql)

    def query(self, sql: str) -> Any:
        return self.inner.query(sql)

    def insert(self, table: str, columns: Any, data: Any, token: str | None) -> int:
        self._check()
        return int(self.inner.insert(table, columns, data, token))

    def insert_avro(self, table: Any, values: Any, token: str | None) -> int:
        self._check()
        return int(self.inner.insert_avro(table, values, token))

    def close(self) -> None:
        self.inner.close()


def test_a_rebalance_while_paused_does_not_leave_partitions_paused(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka keeps a partition paused when a rebalance hands it back; the sink must resume it.
    Here the store is down, the sink pauses, another member joins and leaves, the store returns."""
    import dataclasses

    from confluent_kafka import Consumer

    from pipeline.config import Settings
    from pipeline.store import sink as sink_module
    from pipeline.store.embedded import ChdbBackend
    from pipeline.store.migrations import migrate
    from pipeline.store.policy import Retention

    monkeypatch.setattr(sink_module, "PAUSE_AFTER_S", 0.5)
    outputs = processed_outputs(400)
    reports = {schemas.decode(v)[1]["report_id"] for topic, _, v in outputs if topic == "reports"}
    with namespace(kafka_bootstrap, tmp_path / "ns", "unused-keyring") as ns:
        prefix = ns.settings.topics.reports.removesuffix("reports")
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for topic, key, value in outputs:
            producer.produce(prefix + topic, value, key=key)
        assert producer.flush(60) == 0
        settings = Settings.from_env()
        settings = dataclasses.replace(settings, clickhouse=dataclasses.replace(
            settings.clickhouse, batch_rows=200, flush_interval_ms=100, retry_max_ms=500))  # fmt: skip
        backend = FlakyBackend(ChdbBackend(tmp_path / "store", "lt_flaky"))
        migrate(backend, Retention(7305, 3650, 7305))
        backend.down.set()
        group = f"{ns.settings.kafka.group}.flaky"
        sink = sink_module.Sink(settings, backend, group=group)
        result: list[Any] = []
        runner = threading.Thread(target=lambda: result.append(sink.run(until_caught_up=True, timeout_s=120)))
        try:
            runner.start()
            deadline = time.monotonic() + 30
            while not sink.paused and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sink.paused, "the sink paused its partitions"
            other = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
            other.subscribe(sink_module.Router(settings.topics).subscription())
            end = time.monotonic() + 8  # joins: a rebalance; leaves: another one
            while time.monotonic() < end:
                other.poll(0.2)
            other.close()
            backend.down.clear()
            runner.join(150)
            assert result, "the sink caught up after the store returned"
            stored = {r for (r,) in backend.query("SELECT report_id FROM lt_flaky.reports FINAL").rows}
        finally:
            sink.stop()
            backend.down.clear()
            runner.join(30)
            backend.close()
    assert stored == reports
