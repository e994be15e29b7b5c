"""Session-wide real services.  Set STRANGLER_TEST_PG_DSN / STRANGLER_TEST_KAFKA to use
existing ones instead of starting them.  A service that cannot start fails the tests
that need it, with the reason; nothing is skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness import Broker, ServiceError, postgres_cluster


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    existing = os.environ.get("STRANGLER_TEST_PG_DSN")
    if existing:
        yield existing
        return
    try:
        with postgres_cluster() as cluster:
            yield cluster.dsn
    except ServiceError as exc:
        pytest.fail(f"PostgreSQL test service could not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker | None]:
    """The harness's own broker, or None when STRANGLER_TEST_KAFKA names an existing one."""
    if os.environ.get("STRANGLER_TEST_KAFKA"):
        yield None
        return
    broker = Broker()
    try:
        broker.start()
    except ServiceError as exc:
        pytest.fail(f"Kafka-protocol test broker could not start: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker | None) -> str:
    if kafka_broker is None:
        return os.environ["STRANGLER_TEST_KAFKA"]
    return kafka_broker.bootstrap
