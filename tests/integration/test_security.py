"""Security against a real broker with authentication and ACLs on (a private broker: see secure_support).

Every party is its own SCRAM principal with the ACLs `lookthrough acl apply` derives from the
reference data. What must hold (issue 6): reporter A cannot produce to B's ingress topic;
exchange X cannot read Y's topic or join Y's consumer group; an unauthenticated client and a
wrong password are refused; after a licence is revoked and `acl apply` runs, the exchange's next
fetch fails; the whole pipeline still matches the ground truth. Plus: `send` works under its
principal, TLS, and ClickHouse users on the Debian server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from pipeline import cli, localrun, refstore
from pipeline.config import Settings
from pipeline.crypto.admin import export_public
from pipeline.marketkeys import create_market_keyring
from pipeline.topics import TopicSpec, ensure_topics, feedback_topic, ingress_topic, output_topics

from .pipeline_support import assert_exactly_once, free_ports
from .secure_support import SecureCluster, secure_kafka, secured_run

__all__ = ["secure_kafka"]  # the fixture, imported so pytest finds it here
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "iso-"  # this module's principals; the secured pipeline run uses its own
NOW = int(time.time() * 1000)


def subscriber(exchange: str, licensed: bool = True) -> dict[str, Any]:
    return {"subscriber_id": f"{exchange}-DATA", "exchange": exchange, "licence_no": f"LIC-{exchange}",
            "licensed": licensed, "tier": "full", "valid_from": NOW - 86_400_000, "valid_to": None,
            "updated_at": NOW}  # fmt: skip


@dataclass
class Scenario:
    """Two futures companies and three exchanges (GFEX unlicensed) under topic prefix `env`."""

    cluster: SecureCluster
    env: dict[str, str]  # LT_TOPICS_* of this scenario plus the admin's credentials
    settings: Settings
    credentials: Path

    def user(self, name: str) -> str:
        return f"{PREFIX}{name}"

    def config(self, name: str, **extra: Any) -> dict[str, Any]:
        user = self.user(name)
        return self.cluster.config(user, self.credentials / f"{user}.password", **extra)

    def acl(self, command: str, *args: str, as_user: str | None = None) -> subprocess.CompletedProcess[str]:
        """`lookthrough acl <command>` in its own process, as the admin or as a managed principal."""
        env = {**os.environ, **self.env, "LT_ACL_CREDENTIALS_DIR": str(self.credentials)}
        if as_user is not None:
            env.update(self.cluster.env(self.user(as_user), self.credentials / f"{self.user(as_user)}.password"))
        return subprocess.run([sys.executable, "-m", "pipeline", "acl", command, "--principal-prefix", PREFIX,
                               "--exchange-reporters", "", *args],
                              env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def scenario(secure_kafka: SecureCluster, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    cluster = secure_kafka
    topics_env = localrun.isolated_env("iso.", cluster.bootstrap)
    env = {**topics_env, **cluster.admin_env()}
    settings = Settings.from_env(env)
    admin = AdminClient(settings.kafka.client_config())
    specs: list[TopicSpec] = output_topics(settings, ["SHFE", "DCE", "GFEX"])
    for reporter in ("0101", "0202"):
        specs += [ingress_topic(settings, reporter), feedback_topic(settings, reporter)]
    ensure_topics(admin, settings, specs)
    brokers = [{"broker_id": b, "name": b, "kind": "FUTURES_COMPANY"} for b in ("0101", "0202")]
    refstore.publish(settings, "brokers", brokers)
    refstore.publish(settings, "subscribers", [subscriber("SHFE"), subscriber("DCE"), subscriber("GFEX", False)])
    credentials = tmp_path_factory.mktemp("iso-credentials")
    s = Scenario(cluster, env, settings, credentials)
    applied = s.acl("apply")  # the first apply runs as the broker admin: the operator does not exist yet
    assert applied.returncode == 0, applied.stderr
    # Something to read on every exchange and feedback topic.
    producer = Producer(settings.kafka.client_config())
    for topic in [settings.topics.exchange(ex) for ex in ("SHFE", "DCE", "GFEX")] + \
            [settings.topics.feedback(r) for r in ("0101", "0202")]:  # fmt: skip
        producer.produce(topic, b"record-1", key=b"k")
    assert producer.flush(30) == 0
    return s


def produce_one(config: dict[str, Any], topic: str) -> KafkaError | None:
    """Produce one record; the delivery error, or None when it was written."""
    results: list[KafkaError | None] = []
    producer = Producer({"message.timeout.ms": 5_000, **config})
    producer.produce(topic, b"x", key=b"k", on_delivery=lambda err, _msg: results.append(err))
    producer.flush(15)
    return results[0] if results else KafkaError(KafkaError._TIMED_OUT)


class Reader:
    """A subscribed consumer that reports the first record or the first error."""

    def __init__(self, config: dict[str, Any], topic: str, group: str) -> None:
        self.consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False})  # fmt: skip
        self.consumer.subscribe([topic])

    def next(self, timeout: float = 20.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.consumer.poll(0.5)
            if message is not None:
                return message
        raise AssertionError(f"neither a record nor an error within {timeout:g}s")

    def close(self) -> None:
        self.consumer.close()


def read_outcome(config: dict[str, Any], topic: str, group: str) -> KafkaError | bytes:
    reader = Reader(config, topic, group)
    try:
        message = reader.next()
        error = message.error()
        return error if error is not None else bytes(message.value() or b"")
    finally:
        reader.close()


def metadata_error(config: dict[str, Any], topic: str) -> Any:
    """The broker's answer to a metadata request for `topic`: an error code, or None when visible.

    A client that may not DESCRIBE a topic cannot locate its leader, so it never gets to fetch;
    (READ implies DESCRIBE, and no party is ever granted DESCRIBE alone).
    """
    consumer = Consumer({**config, "group.id": f"{PREFIX}metadata-only"})
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        return None if found is None or found.error is None else found.error.code()
    finally:
        consumer.close()


def code(outcome: KafkaError | bytes | None) -> Any:
    return outcome.code() if isinstance(outcome, KafkaError) else outcome


# --- authentication ------------------------------------------------------------------------


def test_unauthenticated_client_is_refused(secure_kafka: SecureCluster) -> None:
    for bootstrap in (secure_kafka.bootstrap, f"127.0.0.1:{secure_kafka.controller_port}"):
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=3)
    assert produce_one(secure_kafka.config(None, **{"message.timeout.ms": 3000}), "lt.ingress.0101") is not None


def test_wrong_password_is_refused(secure_kafka: SecureCluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-admin-password-0123456789")
    errors: list[KafkaError] = []
    admin = AdminClient(secure_kafka.config("admin", wrong, error_cb=errors.append))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)  # serves error_cb
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    errors.clear()
    unknown = AdminClient(secure_kafka.config("nobody", wrong, error_cb=errors.append))
    with pytest.raises(KafkaException):
        unknown.list_topics(timeout=3)
    unknown.poll(1)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


# --- authorization -------------------------------------------------------------------------


def test_reporter_writes_its_own_topic_only(scenario: Scenario) -> None:
    t = scenario.settings.topics
    a = scenario.config("reporter-0101")
    assert produce_one(a, t.ingress("0101")) is None
    assert code(produce_one(a, t.ingress("0202"))) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(produce_one(a, t.exchange("SHFE"))) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(produce_one(a, t.feedback("0101"))) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Its own feedback, as its own group; never another company's.
    assert read_outcome(a, t.feedback("0101"), "feedback-0101") == b"record-1"
    assert code(read_outcome(a, t.feedback("0202"), "feedback-0101")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(read_outcome(a, t.ingress("0202"), "feedback-0101")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Another company's transactional IDs (its `send` batches) are out of reach: no fencing them.
    producer = Producer({**a, "transactional.id": "lt-send.0202.stolen"})
    with pytest.raises(KafkaException) as info:
        producer.init_transactions(15)
    assert info.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_exchange_reads_its_own_topic_and_group_only(scenario: Scenario) -> None:
    t = scenario.settings.topics
    shfe = scenario.config("exchange-SHFE")
    assert read_outcome(shfe, t.exchange("SHFE"), "exchange-SHFE") == b"record-1"
    assert code(read_outcome(shfe, t.exchange("DCE"), "exchange-SHFE")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(read_outcome(shfe, t.exchange("SHFE"), "exchange-DCE")) == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert code(read_outcome(shfe, t.reports, "exchange-SHFE")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(produce_one(shfe, t.exchange("SHFE"))) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # An exchange without a licensed subscriber may authenticate but reads nothing, not even its own topic.
    gfex = scenario.config("exchange-GFEX")
    assert code(read_outcome(gfex, t.exchange("GFEX"), "exchange-GFEX")) == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert metadata_error(gfex, t.exchange("GFEX")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert metadata_error(shfe, t.exchange("GFEX")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert metadata_error(shfe, t.exchange("SHFE")) is None


def test_revoked_licence_fails_the_next_fetch(scenario: Scenario) -> None:
    t = scenario.settings.topics
    dce = scenario.config("exchange-DCE")
    assert metadata_error(dce, t.exchange("DCE")) is None
    reader = Reader(dce, t.exchange("DCE"), "exchange-DCE.revocation")  # what `lookthrough subscribe` does
    try:
        assert reader.next().value() == b"record-1"  # reading, before the revocation
        refstore.publish(scenario.settings, "subscribers", [subscriber("DCE", licensed=False)])
        plan = scenario.acl("plan", as_user="operator")
        assert plan.returncode == 0, plan.stderr
        removed = [line for line in plan.stdout.splitlines() if line.startswith("- ")]
        assert removed and all(line.startswith(f"- allow {PREFIX}exchange-DCE: READ") for line in removed), plan.stdout
        assert "+ " not in plan.stdout
        applied = scenario.acl("apply", as_user="operator")  # the operator principal administers ACLs
        assert applied.returncode == 0, applied.stderr
        # A fetch authorized before the revocation may still be waiting (fetch.wait.max.ms, 500 ms) and
        # would return records produced meanwhile; a record produced after it returned is only fetchable
        # by a fetch authorized after the revocation.
        time.sleep(1.5)
        assert produce_one(scenario.settings.kafka.client_config(), t.exchange("DCE")) is None
        # The running consumer's next fetch (or heartbeat: its group grant went too) is refused.
        message = reader.next()
        error = message.error()
        assert error is not None, f"read {message.value()!r} after the revocation"
        assert error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED), error
    finally:
        reader.close()
    assert "no changes" in scenario.acl("plan", as_user="operator").stdout, "apply is idempotent"
    # The topic is gone from its view, its groups refused; SHFE, still licensed, keeps reading.
    assert metadata_error(dce, t.exchange("DCE")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code(read_outcome(dce, t.exchange("DCE"), "exchange-DCE")) == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert read_outcome(scenario.config("exchange-SHFE"), t.exchange("SHFE"), "exchange-SHFE.x") == b"record-1"
    # Licence restored: access returns with the next apply.
    refstore.publish(scenario.settings, "subscribers", [subscriber("DCE")])
    assert scenario.acl("apply", as_user="operator").returncode == 0
    assert read_outcome(dce, t.exchange("DCE"), "exchange-DCE.again") == b"record-1"


# --- the reporter's send command under its principal -----------------------------------------


@pytest.fixture(scope="module")
def public_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    directory = tmp_path_factory.mktemp("iso-keys")
    keyring, keyset = create_market_keyring(directory, ("x25519",))
    path = directory / "public.json"
    path.write_text(json.dumps(export_public(keyring, include_psk=True)))
    path.chmod(0o600)
    return path, keyset.active[0]


def write_batch(path: Path, key_version: int, count: int = 30) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(count):
            fh.write(json.dumps({
                "report_id": f"0101-sec-{i:04d}", "investor_id": f"INV{i:04d}", "user_id": f"U{i:04d}",
                "trading_day": "20251120", "vendor_id": "CTP", "app_type": 1, "public_ip": "58.20.30.40",
                "public_port": 40000 + i, "login_time": "2025-11-20 09:00:00", "app_id": "CT_Q7_V1.0.0",
                "key_version": key_version,
                "terminal": {"type": 7, "collect_flags": 0, "fields": {
                    "collect_time": "2025-11-20 08:59:30", "platform": "web", "device_model": "Chrome 131",
                    "os_version": "macOS 15", "device_id": f"web-{i:04d}", "location": "31.23040,121.47370"}},
            }) + "\n")  # fmt: skip


def send(scenario: Scenario, batch: Path, keys: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """`lookthrough send` in this process, authenticated through LT_KAFKA_* (never a password in argv)."""
    for key, value in scenario.env.items():
        if key.startswith("LT_TOPICS_"):
            monkeypatch.setenv(key, value)
    c = scenario.config("reporter-0101")
    monkeypatch.setenv("LT_KAFKA_SECURITY_PROTOCOL", c["security.protocol"])
    monkeypatch.setenv("LT_KAFKA_SASL_MECHANISM", c["sasl.mechanism"])
    monkeypatch.setenv("LT_KAFKA_SASL_USERNAME", c["sasl.username"])
    monkeypatch.setenv("LT_KAFKA_SASL_PASSWORD", c["sasl.password"])
    argv = ["send", str(batch), "--reporter", "0101", "--keys", str(keys), "--bootstrap", scenario.cluster.bootstrap,
            "--quiet", "--batch-size", "10"]  # fmt: skip
    return cli.main(argv)


def test_send_refuses_a_password_on_the_command_line(scenario: Scenario, public_keys: tuple[Path, int],
                                                     tmp_path: Path) -> None:  # fmt: skip
    batch = tmp_path / "batch.jsonl"
    write_batch(batch, public_keys[1])
    argv = ["send", str(batch), "--reporter", "0101", "--keys", str(public_keys[0]), "--bootstrap",
            scenario.cluster.bootstrap, "--quiet", "-X", "sasl.password=whatever"]  # fmt: skip
    assert cli.main(argv) == 2


def test_send_works_under_the_reporters_principal(scenario: Scenario, public_keys: tuple[Path, int],
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    batch = tmp_path / "batch.jsonl"
    write_batch(batch, public_keys[1])
    assert send(scenario, batch, public_keys[0], monkeypatch) == 0
    state = (tmp_path / "batch.jsonl.sent-state").read_text()
    assert json.loads(state.splitlines()[0])["transactional_id"].startswith("lt-send.0101.")
    assert send(scenario, batch, public_keys[0], monkeypatch) == 0  # everything already sent: skipped


def test_send_resume_read_back_under_the_reporters_principal(
    scenario: Scenario, public_keys: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = tmp_path / "batch.jsonl"
    write_batch(batch, public_keys[1], count=12)
    assert send(scenario, batch, public_keys[0], monkeypatch) == 0
    state = tmp_path / "batch.jsonl.sent-state"
    lines = state.read_text().splitlines(keepends=True)
    state.write_text("".join(line for line in lines if '"closed"' not in line))  # as if the run had crashed
    assert send(scenario, batch, public_keys[0], monkeypatch) == 0


# --- TLS -----------------------------------------------------------------------------------


def test_tls_listener_needs_the_ca(scenario: Scenario) -> None:
    cluster = scenario.cluster
    t = scenario.settings.topics
    tls = scenario.config("reporter-0101", **{"bootstrap.servers": cluster.tls_bootstrap,
                                              "security.protocol": "SASL_SSL"})  # fmt: skip
    assert produce_one({**tls, "ssl.ca.location": str(cluster.ca)}, t.ingress("0101")) is None
    errors: list[KafkaError] = []
    admin = AdminClient({**tls, "error_cb": errors.append})  # the system CAs do not know the local CA
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)


# --- the pipeline, end to end, authenticated -------------------------------------------------


def test_pipeline_end_to_end_with_authentication(secure_kafka: SecureCluster,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    run = secured_run(secure_kafka, tmp_path_factory.mktemp("secured-run"))
    assert run.exit_codes == [0, 0], run.worker_logs[-3000:]
    assert_exactly_once(run.outputs, run.truth)
    by_id = {t["report_id"]: t for t in run.truth}
    # E105 still holds under authentication: a spoofed envelope on the reporter's own topic.
    spoofed = [d for d in run.outputs.dlq if d["error_code"] == "E105"]
    assert spoofed and len(spoofed) == sum(t.get("code") == "E105" for t in run.truth)
    assert all(d["topic"] == run.topics.ingress(by_id[d["report_id"]]["reporter_id"]) for d in spoofed)
    # Only licensed subscribers' exchanges receive anything (the market leaves GFEX unlicensed).
    assert "GFEX" not in {ex for ex, records in run.outputs.exchange.items() if records}
    assert {ex for ex, records in run.outputs.exchange.items() if records} <= {"SHFE", "INE", "DCE", "CZCE", "CFFEX"}
    for exchange, records in run.outputs.exchange.items():
        for r in records:
            assert r["exchange"] == exchange and "investor_id" not in r
            assert r["provenance"]["processing_system"] == "lookthrough"
            assert r["provenance"]["source"] == by_id[r["report_id"]]["reporter_id"]


# --- ClickHouse: analyst and per-exchange users on the Debian server -------------------------


@pytest.fixture(scope="module")
def private_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """A private clickhouse-server (18.16) with the generated users.d fragment; stopped afterwards."""
    run_dir = tmp_path_factory.mktemp("secure-clickhouse")
    credentials = run_dir / "credentials"
    tcp, http, interserver = free_ports(3)
    users_d = run_dir / "clickhouse" / "users.d"
    users_d.mkdir(parents=True)
    generated = subprocess.run(
        [sys.executable, "-m", "pipeline", "acl", "clickhouse", "--table", "deliveries",
         "--hidden-table", "reports", "--exchanges", "SHFE,DCE", "--credentials", str(credentials),
         "--out", str(users_d / "lookthrough-security.xml")],
        env={**os.environ, "LT_CLICKHOUSE_DATABASE": "lookthrough"}, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    env = {**os.environ, "LT_RUN_DIR": str(run_dir), "LT_CLICKHOUSE_TCP_PORT": str(tcp),
           "LT_CLICKHOUSE_HTTP_PORT": str(http), "LT_CLICKHOUSE_INTERSERVER_PORT": str(interserver)}  # fmt: skip
    started = subprocess.run([str(ROOT / "infra/clickhouse/start")], env=env, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"host": "127.0.0.1", "port": tcp}, credentials
    finally:
        subprocess.run([str(ROOT / "infra/clickhouse/stop")], env=env, capture_output=True, timeout=120)


def test_clickhouse_analyst_reads_only_and_exchanges_see_their_rows(
    private_clickhouse: tuple[dict[str, Any], Path],
) -> None:
    from clickhouse_driver import Client
    from clickhouse_driver.errors import ServerException

    server, credentials = private_clickhouse
    admin = Client(**server)
    # Stand-ins for the store's tables: one exchange-scoped, one not.
    admin.execute("CREATE DATABASE IF NOT EXISTS lookthrough")
    admin.execute("CREATE TABLE lookthrough.deliveries (exchange String, report_id String) "
                  "ENGINE = MergeTree ORDER BY report_id")  # fmt: skip
    admin.execute("CREATE TABLE lookthrough.reports (investor_id String) ENGINE = MergeTree ORDER BY investor_id")
    admin.execute("INSERT INTO lookthrough.deliveries VALUES", [("SHFE", "r1"), ("DCE", "r2")])
    admin.execute("INSERT INTO lookthrough.reports VALUES", [("00012345",)])
    mirrors = subprocess.run(
        [sys.executable, "-m", "pipeline", "acl", "clickhouse", "--mirrors", "--from-server", "--exchanges", "SHFE,DCE",
         "--credentials", str(credentials)],
        env={**os.environ, "LT_CLICKHOUSE_HOST": "127.0.0.1", "LT_CLICKHOUSE_PORT": str(server["port"]),
             "LT_CLICKHOUSE_DATABASE": "lookthrough"}, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert mirrors.returncode == 0, mirrors.stderr
    admin.execute("INSERT INTO lookthrough.deliveries VALUES", [("SHFE", "r3"), ("DCE", "r4")])  # after: via the views

    def client(user: str) -> Any:
        return Client(**server, user=user, password=(credentials / f"{user}.password").read_text().strip())

    def refused(c: Any, query: str) -> int:
        with pytest.raises(ServerException) as info:
            c.execute(query)
        return int(info.value.code)

    analyst = client("lt_analyst")
    everything = [("r1",), ("r2",), ("r3",), ("r4",)]
    assert sorted(analyst.execute("SELECT report_id FROM lookthrough.deliveries")) == everything
    assert analyst.execute("SELECT count() FROM lookthrough.reports") == [(1,)]
    assert refused(analyst, "INSERT INTO lookthrough.reports VALUES ('x')") == 164  # READONLY
    assert refused(analyst, "DROP TABLE lookthrough.reports") == 164
    shfe = client("lt_exchange_shfe")
    assert sorted(shfe.execute("SELECT exchange, report_id FROM lookthrough_shfe.deliveries")) == [
        ("SHFE", "r1"), ("SHFE", "r3")]  # fmt: skip
    assert refused(shfe, "SELECT count() FROM lookthrough.deliveries") == 291  # DATABASE_ACCESS_DENIED
    assert refused(shfe, "SELECT count() FROM lookthrough.reports") == 291
    assert refused(shfe, "SELECT count() FROM lookthrough_dce.deliveries") == 291
    assert refused(shfe, "INSERT INTO lookthrough_shfe.deliveries VALUES ('SHFE', 'x')") == 164
    with pytest.raises(ServerException):
        Client(**server, user="lt_exchange_shfe", password="wrong").execute("SELECT 1")
    for c in (admin, analyst, shfe):
        c.disconnect()
