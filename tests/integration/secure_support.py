"""A private Kafka broker with authentication and ACLs on, and one secured pipeline run, for the security tests.

`secure_kafka` (session fixture) starts `infra/kafka/start` with LT_KAFKA_SECURITY=scram on free
ports and a private LT_RUN_DIR, so the shared broker on 19092 and other engineers' tests are never
touched; it is stopped when the session ends. Test modules import the fixture; the broker is
shared between them (a reference-counted singleton, since pytest keeps one fixture per module).

`secured_run(cluster, workdir)` runs a generated market through real worker processes with every
party on its own principal (users and ACLs from `lookthrough acl apply`), once per session, and
keeps what the run wrote: the decoded outputs for the ground-truth comparison and the raw bytes,
logs, metrics scrapes and process command lines for the secret scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipeline import cli, localrun, readback
from pipeline.commands.generate import generate_market
from pipeline.config import Settings, TopicNames
from pipeline.topics import ensure_topics, ingress_topic

from .pipeline_support import Outputs, drain, free_ports, load_reference, load_truth, namespace, read_outputs

ROOT = Path(__file__).resolve().parents[2]
E2E_PRINCIPALS = "e2e-"  # principal prefix of the secured run; other tests use their own
MARKET_SEED = 20240607
MARKET_REPORTS = 3000


@dataclass
class SecureCluster:
    run_dir: Path
    port: int
    controller_port: int
    tls_port: int
    admin_user: str = "admin"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    @property
    def state(self) -> Path:
        return self.run_dir / "kafka"

    @property
    def admin_password_file(self) -> Path:
        return self.state / "secrets" / "admin.password"

    @property
    def ca(self) -> Path:
        return self.state / "tls" / "ca.crt"

    def infra_env(self) -> dict[str, str]:
        return {**os.environ, "LT_RUN_DIR": str(self.run_dir), "LT_KAFKA_SECURITY": "scram",
                "LT_KAFKA_PORT": str(self.port), "LT_KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "LT_KAFKA_TLS_PORT": str(self.tls_port), "LT_KAFKA_HEAP": "-Xms128m -Xmx400m"}  # fmt: skip

    def config(self, user: str | None, password_file: Path | None = None, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for `user` (None: no authentication at all)."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "log_level": 0}
        if user is not None:
            path = password_file or self.admin_password_file
            config.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                           "sasl.username": user, "sasl.password": path.read_text().strip()})  # fmt: skip
        return {**config, **extra}

    def env(self, user: str, password_file: Path) -> dict[str, str]:
        """LT_KAFKA_* variables of a client authenticating as `user` (the password stays in its file)."""
        return {"LT_KAFKA_BOOTSTRAP": self.bootstrap, "LT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "LT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LT_KAFKA_SASL_USERNAME": user,
                "LT_KAFKA_SASL_PASSWORD_FILE": str(password_file)}  # fmt: skip

    def admin_env(self) -> dict[str, str]:
        return self.env(self.admin_user, self.admin_password_file)

    def admin_settings(self, **env: str) -> Settings:
        return Settings.from_env({**self.admin_env(), **env})

    def broker_pid(self) -> int:
        return int((self.state / "kafka.pid").read_text().strip())


def _infra(cluster: SecureCluster, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "infra" / "kafka" / script)], env=cluster.infra_env(),
                          capture_output=True, text=True, timeout=240)  # fmt: skip


_cluster: SecureCluster | None = None
_holders = 0
_lock = threading.Lock()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    """A private SASL/SCRAM broker with ACLs enforced (deny by default), stopped at the end of the session."""
    global _cluster, _holders
    with _lock:
        if _cluster is None:
            port, controller, tls = free_ports(3)
            cluster = SecureCluster(tmp_path_factory.mktemp("secure-kafka"), port, controller, tls)
            started = _infra(cluster, "start")
            if started.returncode != 0:
                _infra(cluster, "stop")
                pytest.fail(f"secure broker did not start:\n{started.stdout}\n{started.stderr}", pytrace=False)
            _cluster = cluster
        _holders += 1
        cluster = _cluster
    try:
        yield cluster
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _infra(cluster, "stop")
                _cluster = None


# --- the secured pipeline run ----------------------------------------------------------------


class MetricsScraper(threading.Thread):
    """Fetches a worker's /metrics every half second; keeps every distinct page."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.pages: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    page = response.read().decode()
                if not self.pages or self.pages[-1] != page:
                    self.pages.append(page)

    def stop(self) -> list[str]:
        self.done.set()
        self.join(5)
        return self.pages


@dataclass
class SecuredRun:
    market_dir: Path
    keyring: Path
    credentials: Path
    topics: TopicNames
    truth: list[dict[str, Any]]
    outputs: Outputs
    raw: dict[str, list[tuple[bytes | None, Any]]]
    worker_logs: str
    metrics: list[str]
    process_views: dict[str, bytes] = field(default_factory=dict)  # "worker-a cmdline" → bytes
    exit_codes: list[int | None] = field(default_factory=list)
    store_dump: dict[str, bytes] | None = None  # "db.table" → every row as raw TSV; None: no dump
    store_note: str = ""  # the sink's output, or why there is no dump
    store_failed: bool = False  # the sink or the dump failed (as opposed to: no store in this tree)


_run: SecuredRun | None = None


def secured_run(cluster: SecureCluster, workdir: Path) -> SecuredRun:
    """The generated market through two workers, every party authenticated as itself; once per session."""
    global _run
    with _lock:
        if _run is None:
            _run = _run_pipeline(cluster, workdir)
        return _run


def _run_pipeline(cluster: SecureCluster, workdir: Path) -> SecuredRun:
    market_dir = workdir / "market"
    summary = generate_market(market_dir, reports=MARKET_REPORTS, seed=MARKET_SEED, defect_rate=0.01,
                              suites=("x25519", "rsa", "sm4"))  # fmt: skip
    truth = load_truth(market_dir)
    creds = cluster.run_dir / "credentials-e2e"
    with namespace(cluster.bootstrap, workdir, summary["keyring"], extra_env=cluster.admin_env()) as ns:
        # The operator's steps: users and ACLs from the reference data, reference data, ingress topics.
        code = cli.main(["acl", "apply", "--ref-dir", str(market_dir / "reference"), "--credentials", str(creds),
                         "--principal-prefix", E2E_PRINCIPALS])  # fmt: skip
        assert code == 0, "acl apply failed"
        load_reference(ns.settings, market_dir)
        records = [json.loads(line) for line in (market_dir / "ingress.jsonl").read_text().splitlines()]
        by_reporter: dict[str, list[str]] = {}
        for record in records:
            by_reporter.setdefault(record["topic"].removeprefix("lt.ingress."), []).append(json.dumps(record))
        admin = AdminClient(ns.settings.kafka.client_config())
        ensure_topics(admin, ns.settings, [ingress_topic(ns.settings, r) for r in sorted(by_reporter)])

        # Workers authenticate as the pipeline principal; worker a serves its metrics.
        pipeline_user = f"{E2E_PRINCIPALS}pipeline"
        pipeline_env = cluster.env(pipeline_user, creds / f"{pipeline_user}.password")
        (metrics_port,) = free_ports(1)
        workers = {"a": ns.start_worker("a", {**pipeline_env, "LT_PIPELINE_METRICS_PORT": str(metrics_port)}),
                   "b": ns.start_worker("b", pipeline_env)}  # fmt: skip
        scraper = MetricsScraper(metrics_port)
        scraper.start()

        # Each futures company (and the exchange reporting for its members) writes its own topic as itself.
        for reporter, lines in sorted(by_reporter.items()):
            user = f"{E2E_PRINCIPALS}reporter-{reporter}"
            path = workdir / f"ingress-{reporter}.jsonl"
            path.write_text("\n".join(lines) + "\n")
            kafka = replace(ns.settings.kafka, sasl_username=user, sasl_password_file=creds / f"{user}.password")
            localrun.feed(replace(ns.settings, kafka=kafka), path)
        drain(ns, truth, timeout=150)

        views: dict[str, bytes] = {}
        for name, worker in workers.items():
            for what in ("cmdline", "environ"):
                with contextlib.suppress(OSError):
                    views[f"worker-{name} {what}"] = Path(f"/proc/{worker.pid}/{what}").read_bytes()
        views["broker cmdline"] = Path(f"/proc/{cluster.broker_pid()}/cmdline").read_bytes()
        time.sleep(1.0)  # one more scrape after the last batch
        metrics = scraper.stop()
        codes = ns.stop_workers()
        outputs = read_outputs(ns.settings)
        client = ns.settings.kafka.client_config()
        prefix = ns.settings.topics.reports.removesuffix("reports")
        raw = readback.read_all(client, readback.topics_matching(client, prefix), decode=False)
        logs = ns.worker_logs()
        topics = ns.settings.topics
        store_dump, store_note, store_failed = _store_sink(cluster, ns.env, creds, workdir)
    return SecuredRun(market_dir, Path(summary["keyring"]), creds, topics, truth, outputs, raw, logs, metrics,
                      views, codes, store_dump, store_note, store_failed)  # fmt: skip


# Dumps every table of an embedded store as raw TSV (argv: store directory, output directory).
_DUMP = r"""
import os, sys
from chdb import session
store, out = sys.argv[1], sys.argv[2]
os.chdir(store)
s = session.Session(store)
tables = s.query("SELECT database, name FROM system.tables WHERE database NOT IN ('system', 'information_schema', "
                 "'INFORMATION_SCHEMA') AND engine NOT IN ('View', 'MaterializedView')", "TSV").bytes().decode()
for line in tables.splitlines():
    db, name = line.split("\t")
    with open(os.path.join(out, f"{db}.{name}"), "wb") as fh:
        fh.write(s.query(f"SELECT * FROM `{db}`.`{name}`", "TSVRaw").bytes())
"""


def _store_sink(cluster: SecureCluster, env: dict[str, str], creds: Path,
                workdir: Path) -> tuple[dict[str, bytes] | None, str, bool]:  # fmt: skip
    """Run `lookthrough store sink` as the store principal into an embedded store; dump its tables.

    A failure is recorded, not raised: it fails the store's scan, not the other tests of the run."""
    if "pipeline.commands.store" not in cli.COMMAND_MODULES:
        return None, "no `lookthrough store` command in this tree", False
    user = f"{E2E_PRINCIPALS}store"
    store = workdir / "store"
    try:
        sink = subprocess.run(
            [sys.executable, "-m", "pipeline", "store", "sink", "--exit-when-caught-up", "--store", str(store)],
            env={**os.environ, **env, **cluster.env(user, creds / f"{user}.password")},
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        return None, f"store sink did not catch up within 120 s:\n{str(exc.stderr or '')[-3000:]}", True
    output = sink.stdout + sink.stderr
    if sink.returncode != 0:
        return None, f"store sink failed under its principal (exit {sink.returncode}):\n{output[-3000:]}", True
    out = workdir / "store-dump"
    out.mkdir()
    dump = subprocess.run([sys.executable, "-c", _DUMP, str(store), str(out)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    if dump.returncode != 0:
        return None, f"dumping the store failed:\n{dump.stderr[-3000:]}", True
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}, output, False
