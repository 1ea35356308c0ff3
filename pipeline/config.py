"""Settings: one frozen object with nested groups, built once (from the environment) and passed down.

Every knob is an `LT_*` environment variable; `Settings.from_env` reads them, and
`Settings.from_mapping` rejects unknown keys so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import ConfigError
from pipeline.kafkalog import LOGGER
from pipeline.profile import limits

PROCESSING_SYSTEM = "lookthrough"


@dataclass(frozen=True)
class TopicNames:
    ingress_prefix: str = "lt.ingress."
    exchange_prefix: str = "lt.exchange."
    reports: str = "lt.reports"
    sharing_state: str = "lt.state.device-sharing"
    feedback_prefix: str = "lt.feedback."
    dlq: str = "lt.dlq"
    ref_prefix: str = "lt.ref."

    def ingress(self, reporter: str) -> str:
        return self.ingress_prefix + reporter

    def reporter_of(self, topic: str) -> str:
        if not topic.startswith(self.ingress_prefix):
            raise ConfigError(f"{topic!r} is not an ingress topic")
        return topic[len(self.ingress_prefix) :]

    def exchange(self, exchange: str) -> str:
        return self.exchange_prefix + exchange

    def feedback(self, reporter: str) -> str:
        return self.feedback_prefix + reporter

    def ref(self, kind: str) -> str:
        return self.ref_prefix + kind


@dataclass(frozen=True)
class KafkaSettings:
    """Cluster and client settings. The SASL password is read from LT_KAFKA_SASL_PASSWORD or
    from `sasl_password_file` when a client is built, so it never sits in settings or argv."""

    bootstrap: str = "127.0.0.1:19092"
    group: str = "lookthrough-pipeline"
    partitions: int = 2
    # 0: as many as `partitions`. A worker writes a reporter's feedback to the partition that
    # follows the report's ingress partition (`pipeline.worker`), so each transaction touches one
    # feedback partition per reporter whatever the count, and workers do not share them.
    feedback_partitions: int = 0
    replication_factor: int = 1
    exchange_retention_ms: int = 30 * 86_400_000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password_file: Path | None = None
    ssl_ca_location: str = ""

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings for any client of this cluster (bootstrap, security, logger)."""
        # Its lines through Python logging, repeats held back (`pipeline.kafkalog`).
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": LOGGER}
        if self.security_protocol.upper() != "PLAINTEXT":
            config["security.protocol"] = self.security_protocol
        if "SASL" in self.security_protocol.upper():
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self._password()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def _password(self) -> str:
        if self.sasl_password_file is not None:
            from pipeline.crypto.files import read_owner_only  # owner-only, like key files

            return read_owner_only(self.sasl_password_file).decode().strip()
        password = os.environ.get("LT_KAFKA_SASL_PASSWORD")
        if password is None:
            raise ConfigError("SASL needs LT_KAFKA_SASL_PASSWORD or LT_KAFKA_SASL_PASSWORD_FILE")
        return password


@dataclass(frozen=True)
class PipelineSettings:
    environment: str = "production"
    batch_size: int = 500
    batch_timeout_ms: int = 5
    commit_interval_ms: int = 100
    # Under a backlog (a worker that has consumed only full batches for `backlog_after_ms`) a
    # transaction takes the records of this span instead: fewer, larger transactions. 0 (or
    # anything not above the commit interval) keeps `commit_interval_ms` always.
    backlog_commit_interval_ms: int = 400
    backlog_after_ms: int = 500
    # How long a worker that died without leaving the group (SIGKILL, a lost host) keeps its
    # partitions, and every other worker waits, before the group reassigns them.
    session_timeout_ms: int = 45_000
    # RSA blobs of the records ahead are decrypted in this many child processes (`pipeline.ahead`)
    # when the worker's keyring comes from a file, else on `decrypt_threads` threads; 0 and 0: inline.
    decrypt_processes: int = 2
    decrypt_threads: int = 2
    metrics_port: int = 0
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    version: str = __version__
    keyring: Path | None = None
    fingerprint_key: bytes = field(default=b"", repr=False)
    time_skew_seconds: int = field(default_factory=lambda: limits().time_skew_seconds)
    sharing_max_investors: int = field(default_factory=lambda: limits().device_sharing_max_investors)
    sharing_window_seconds: int = field(default_factory=lambda: limits().device_sharing_window_seconds)
    # A sharing key is deleted once idle this long past the window (`pipeline.sharing`), so a worker
    # that lags behind the newest data by less still sees a whole window.
    sharing_expiry_grace_seconds: int = 3_600


@dataclass(frozen=True)
class ClickHouseSettings:
    """The analytics store: a ClickHouse server when `host` is set, else embedded chdb in `path`.

    The password is read from LT_CLICKHOUSE_PASSWORD or `password_file` when a client is built, so
    it never sits in settings. Retention periods are checked by `pipeline.store.policy` (deliveries
    at least 30 days); the sink flushes at `batch_rows` records or every `flush_interval_ms`.
    """

    host: str | None = None
    port: int = 19000
    database: str = "lookthrough"
    user: str = "default"
    password_file: Path | None = None
    secure: bool = False
    connect_timeout_s: int = 5
    path: Path = field(default_factory=lambda: Path(os.environ.get("LT_RUN_DIR", ".run")) / "store")
    sink_group: str = ""  # default: "<kafka group>.store"
    batch_rows: int = 20_000
    flush_interval_ms: int = 1_000
    retry_initial_ms: int = 250
    retry_max_ms: int = 10_000
    records_retention_days: int = 7_305  # terminal records, dead letters, exchange aggregates: 20 years
    deliveries_retention_days: int = 30
    subscribers_retention_days: int = 7_305


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicNames = field(default_factory=TopicNames)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    clickhouse: ClickHouseSettings = field(default_factory=ClickHouseSettings)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Settings:
        """Build from `group.name` → text; unknown keys raise ConfigError."""
        groups: dict[str, dict[str, Any]] = {}
        defaults = cls()
        for dotted, text in values.items():
            group, _, name = dotted.partition(".")
            current = getattr(defaults, group, None)
            known = {f.name: f for f in fields(current)} if current is not None else {}
            if name not in known:
                raise ConfigError(f"unknown setting {dotted!r}")
            groups.setdefault(group, {})[name] = _convert(getattr(current, name), text, dotted)
        return replace(defaults, **{g: replace(getattr(defaults, g), **v) for g, v in groups.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `LT_<GROUP>_<NAME>` variables (e.g. LT_KAFKA_BOOTSTRAP, LT_PIPELINE_KEYRING)."""
        environ = os.environ if environ is None else environ
        values = {}
        for group in ("kafka", "topics", "pipeline", "clickhouse"):
            for f in fields(getattr(cls(), group)):
                var = f"LT_{group}_{f.name}".upper()
                if var in environ:
                    values[f"{group}.{f.name}"] = environ[var]
        return cls.from_mapping(values)

    @classmethod
    def unknown_env(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """`LT_PIPELINE_*` and `LT_TOPICS_*` variables that name no setting (a typo, or a setting
        since removed, such as LT_PIPELINE_BATCH_MAX_MS): `from_env` ignores them, so a worker
        warns. Those two prefixes are the settings' alone; LT_KAFKA_* and LT_CLICKHOUSE_* are
        shared with the scripts that start the local services."""
        environ = os.environ if environ is None else environ
        defaults = cls()
        groups = ("pipeline", "topics")
        known = {f"LT_{group}_{f.name}".upper() for group in groups for f in fields(getattr(defaults, group))}
        return sorted(var for var in environ if var.startswith(("LT_PIPELINE_", "LT_TOPICS_")) and var not in known)


def _convert(default: Any, text: str, name: str) -> Any:
    try:
        if isinstance(default, bool):
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, bytes):
            return text.encode()
        if isinstance(default, Path) or name.endswith(("keyring", "_file")):
            return Path(text)
    except ValueError:
        raise ConfigError(f"setting {name} is not a valid {type(default).__name__}") from None
    return text
