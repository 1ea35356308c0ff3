"""Settings: built from LT_* variables, unknown keys rejected, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError


def test_from_env_reads_groups_and_converts_types(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "LT_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
        "LT_KAFKA_PARTITIONS": "12",
        "LT_PIPELINE_KEYRING": str(tmp_path / "keyring.json"),
        "LT_TOPICS_DLQ": "x.dlq",
        "UNRELATED": "ignored",
    })
    assert settings.kafka.bootstrap == "k1:9092,k2:9092"
    assert settings.kafka.partitions == 12
    assert settings.pipeline.keyring == tmp_path / "keyring.json"
    assert settings.topics.dlq == "x.dlq"
    assert settings.topics.reports == "lt.reports"


def test_variables_of_the_settings_own_prefixes_that_name_no_setting_are_listed() -> None:
    environ = {
        "LT_PIPELINE_BATCH_MAX_MS": "50",  # removed in favour of LT_PIPELINE_COMMIT_INTERVAL_MS
        "LT_PIPELINE_COMIT_INTERVAL_MS": "50",  # a typo
        "LT_TOPICS_DLQQ": "x",
        "LT_PIPELINE_COMMIT_INTERVAL_MS": "50",
        "LT_TOPICS_DLQ": "x.dlq",
        "LT_KAFKA_PORT": "19092",  # the broker's start script's, not a setting: not listed
        "LT_RUN_DIR": ".run",
    }
    unknown = ["LT_PIPELINE_BATCH_MAX_MS", "LT_PIPELINE_COMIT_INTERVAL_MS", "LT_TOPICS_DLQQ"]
    assert Settings.unknown_env(environ) == unknown


def test_unknown_or_malformed_settings_fail_loudly() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'kafka\.bootstrp'"):
        Settings.from_mapping({"kafka.bootstrp": "x"})
    with pytest.raises(ConfigError, match=r"kafka\.partitions"):
        Settings.from_mapping({"kafka.partitions": "many"})


def test_sasl_password_comes_from_file_or_env_and_stays_out_of_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-Pa55\n")
    secret.chmod(0o644)
    too_open = Settings.from_mapping(
        {"kafka.security_protocol": "SASL_PLAINTEXT", "kafka.sasl_password_file": str(secret)}
    )
    with pytest.raises(ConfigError, match="password"):
        too_open.kafka.client_config()
    secret.chmod(0o600)
    settings = Settings.from_mapping({
        "kafka.security_protocol": "SASL_PLAINTEXT",
        "kafka.sasl_username": "pipeline",
        "kafka.sasl_password_file": str(secret),
    })
    config = settings.kafka.client_config()
    assert config["sasl.password"] == "s3cr3t-Pa55"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "s3cr3t" not in repr(settings)

    from_env = Settings.from_mapping({"kafka.security_protocol": "SASL_PLAINTEXT", "kafka.sasl_username": "p"})
    monkeypatch.delenv("LT_KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="LT_KAFKA_SASL_PASSWORD"):
        from_env.kafka.client_config()
    monkeypatch.setenv("LT_KAFKA_SASL_PASSWORD", "from-env")
    assert from_env.kafka.client_config()["sasl.password"] == "from-env"


def test_fingerprint_key_is_not_in_repr() -> None:
    settings = Settings.from_mapping({"pipeline.fingerprint_key": "hmac-key-material"})
    assert settings.pipeline.fingerprint_key == b"hmac-key-material"
    assert "hmac-key-material" not in repr(settings)


def test_topic_names_map_reporters_both_ways() -> None:
    topics = Settings().topics
    assert topics.reporter_of(topics.ingress("0101")) == "0101"
    with pytest.raises(ConfigError):
        topics.reporter_of("lt.reports")
