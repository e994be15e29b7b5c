"""PostgreSQL-specific outbox behaviour: NOTIFY wake-ups, leadership tied to the session."""

from __future__ import annotations

import asyncio

import asyncpg

from gateway.capture.outbox.postgres import PostgresOutbox
from gateway.capture.rules import Event
from tests.eventually import eventually


async def end_lock_holding_sessions(dsn: str) -> int:
    """Terminate the sessions holding advisory locks in this database; how many there were."""
    conn = await asyncpg.connect(dsn)
    try:
        ended = await conn.fetch(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
            "JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
        )
    finally:
        await conn.close()
    return len(ended)


async def test_new_rows_wake_the_relay_without_polling(pg_database: str) -> None:
    store, writer = PostgresOutbox(pg_database), PostgresOutbox(pg_database)
    await store.init()
    await store.wait_for_rows(0.01)  # starts listening
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.ensure_future(store.wait_for_rows(5.0))
    await asyncio.sleep(0)  # the waiter starts waiting
    await writer.append(
        [Event("00000000-0000-4000-8000-000000000001", "order", "1", "T", {}, 1.0, {})]
    )
    await waiting
    assert loop.time() - started < 1.0
    await store.close()
    await writer.close()


async def test_leadership_ends_with_the_leaders_session(pg_database: str) -> None:
    a, b = PostgresOutbox(pg_database), PostgresOutbox(pg_database)
    await a.init()
    assert await a.lead("a", 5)
    assert not await b.lead("b", 5)
    # The leader's session dies (as when its process is killed) ...
    assert await end_lock_holding_sessions(pg_database) == 1
    # ... and with it the lock: the standby takes over.
    await eventually(lambda: b.lead("b", 5), timeout=10, message="b leading after a's session")
    assert await b.lead("b", 5)
    assert not await a.lead("a", 5)
    await a.close()
    await b.close()
