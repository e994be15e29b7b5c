"""Session-wide real services.  Set STRANGLER_TEST_PG_DSN / STRANGLER_TEST_KAFKA to use
existing ones instead of starting them.  A service that cannot start fails the tests
that need it, with the reason; nothing is skipped.  Tests that use a service fixture carry
its marker (``-m "not postgres and not kafka"`` selects the ones that need neither)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness import Broker, ServiceError, postgres_cluster

# Fixtures that start (or need) a service; ``own_broker`` is the per-test broker some
# test modules start to restart it empty.
SERVICE_FIXTURES = {
    "postgres": frozenset({"pg_dsn", "pg_database"}),
    "kafka": frozenset({"kafka_bootstrap", "kafka_broker", "own_broker"}),
}


def _heed_sigint() -> None:
    """A shell that starts the suite in the background (``cmd &`` without job control)
    starts it with SIGINT ignored, and a process started with a signal ignored passes
    that on to its children: the demo and the CLIs the tests stop with Ctrl-C would not
    stop.  The tests run with Python's own SIGINT handler, as from a terminal (what a
    process sets a handler for, its children start with at the default)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test compiled modules older than their sources (gateway/native.py)."""
    _heed_sigint()
    from gateway.native import stale

    outdated = stale()
    if outdated:
        raise pytest.UsageError(
            "compiled modules are older than their sources: "
            + ", ".join(outdated)
            + "; rebuild with `make native` (or remove them: python scripts/compile.py --clean)"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the services its fixtures (direct or indirect) start."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in SERVICE_FIXTURES.items():
            if used & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A failed test can leave an aiosqlite connection open (its traceback keeps it alive);
    the connection's worker thread is not a daemon and would keep pytest from exiting."""
    import aiosqlite

    for thing in gc.get_objects():
        # type() rather than isinstance(): a dead weakref proxy raises on isinstance
        if type(thing) is aiosqlite.Connection:
            thing.stop()


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


def _admin(dsn: str, sql: str) -> None:
    """Run one statement on a helper thread (usable while an event loop runs here)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def pg_database(pg_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the test cluster; its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(pg_dsn, f'CREATE DATABASE "{name}"')
    yield f"{pg_dsn.rsplit('/', 1)[0]}/{name}"
    _admin(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
