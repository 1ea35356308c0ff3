"""Fixtures for tests against the real Kafka broker and ClickHouse server.

infra/test starts both services and exports LT_KAFKA_BOOTSTRAP, LT_CLICKHOUSE_HOST and
LT_CLICKHOUSE_PORT. A service that does not answer within a few seconds FAILS the tests
that need it (never a skip: a silently skipped integration suite proves nothing).
Every test collected under tests/integration gets the `integration` marker.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
SERVICE_TIMEOUT_S = 5.0
HOW_TO_START = (
    "Run the suite with infra/test, or start the services by hand with infra/kafka/start and infra/clickhouse/start."
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


# --- Kafka -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a broker that answered a metadata request."""
    bootstrap = os.environ.get("LT_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    problem = None
    try:
        md = admin.list_topics(timeout=SERVICE_TIMEOUT_S)
    except KafkaException as exc:
        problem = exc.args[0].str() if exc.args else str(exc)
    if problem is not None:
        pytest.fail(
            f"Kafka at {bootstrap} (LT_KAFKA_BOOTSTRAP) did not answer within "
            f"{SERVICE_TIMEOUT_S:g} s: {problem}. {HOW_TO_START}",
            pytrace=False,
        )
    if not md.brokers:
        pytest.fail(f"Kafka at {bootstrap} answered without any broker. {HOW_TO_START}", pytrace=False)
    return bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


def _topic_base(request: pytest.FixtureRequest) -> str:
    # Topic names allow [a-zA-Z0-9._-] and at most 249 characters.
    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:80].strip("-")
    return f"lt.test.{name}"


def delete_topics(admin: AdminClient, names: list[str]) -> None:
    """Delete topics, ignoring ones that do not exist (the test may never have created them)."""
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=10).values():
        try:
            future.result(timeout=15)
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest, kafka_admin: AdminClient) -> Iterator[str]:
    """A fresh topic name (not created) for this test; the topic is deleted afterwards if it exists."""
    name = f"{_topic_base(request)}.{uuid.uuid4().hex[:12]}"
    yield name
    delete_topics(kafka_admin, [name])


@pytest.fixture
def new_topic(request: pytest.FixtureRequest, kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Factory: new_topic(partitions=1, config={...}) creates a uniquely named topic and
    returns its name; all topics created through it are deleted after the test."""
    created: list[str] = []

    def create(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{_topic_base(request)}.{uuid.uuid4().hex[:12]}"
        spec = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([spec], operation_timeout=10)[name].result(timeout=15)
        created.append(name)
        return name

    yield create
    delete_topics(kafka_admin, created)


# --- ClickHouse --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clickhouse_settings() -> dict[str, Any]:
    """Keyword arguments for clickhouse_driver.Client of a server that answered SELECT 1."""
    from clickhouse_driver import Client
    from clickhouse_driver.errors import Error as ClickHouseError

    settings: dict[str, Any] = {
        "host": os.environ.get("LT_CLICKHOUSE_HOST", "127.0.0.1"),
        "port": int(os.environ.get("LT_CLICKHOUSE_PORT", "19000")),
        "user": os.environ.get("LT_CLICKHOUSE_USER", "default"),
        "password": os.environ.get("LT_CLICKHOUSE_PASSWORD", ""),
        "database": os.environ.get("LT_CLICKHOUSE_DATABASE", "default"),
    }
    where = f"{settings['host']}:{settings['port']} (LT_CLICKHOUSE_HOST/LT_CLICKHOUSE_PORT)"
    client = Client(**settings, connect_timeout=SERVICE_TIMEOUT_S, send_receive_timeout=SERVICE_TIMEOUT_S)
    problem = None
    try:
        answer = client.execute("SELECT 1")
    except (ClickHouseError, OSError, EOFError) as exc:
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        client.disconnect()
    if problem is not None:
        pytest.fail(
            f"ClickHouse at {where} did not answer within {SERVICE_TIMEOUT_S:g} s: {problem}. {HOW_TO_START}",
            pytrace=False,
        )
    if answer != [(1,)]:
        pytest.fail(f"ClickHouse at {where} answered SELECT 1 with {answer!r}", pytrace=False)
    return settings


@pytest.fixture
def clickhouse_client(clickhouse_settings: dict[str, Any]) -> Iterator[Any]:
    from clickhouse_driver import Client

    client = Client(**clickhouse_settings)
    yield client
    client.disconnect()


@pytest.fixture
def server_store(clickhouse_settings: dict[str, Any]) -> Iterator[Any]:
    """A fresh database on the server, migrated, as a store Backend; dropped afterwards."""
    import uuid

    from pipeline.config import ClickHouseSettings
    from pipeline.store.backend import connect
    from pipeline.store.migrations import migrate
    from pipeline.store.policy import Retention

    database = f"lt_test_{uuid.uuid4().hex[:10]}"
    settings = ClickHouseSettings(host=clickhouse_settings["host"], port=clickhouse_settings["port"],
                                  user=clickhouse_settings["user"], database=database)  # fmt: skip
    backend = connect(settings)
    try:
        migrate(backend, Retention.from_settings(settings))
        yield backend
    finally:
        backend.execute(f"DROP DATABASE IF EXISTS {settings.database}")
        backend.close()
