"""PostgreSQL-specific outbox behaviour: NOTIFY wake-ups, leadership tied to the session,
backlog reads planned as an ordered index walk."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from gateway.capture.outbox.postgres import IN_SEQ_ORDER, PENDING, PostgresOutbox
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


async def plan_of_pending(conn: asyncpg.Connection, settings: str) -> str:
    async with conn.transaction():
        if settings:
            await conn.execute(settings)
        rows = await conn.fetch("EXPLAIN " + PENDING, 500, 0)
    return "\n".join(r[0] for r in rows)


async def test_a_backlog_is_read_in_seq_order_from_the_index_without_sorting(
    pg_database: str,
) -> None:
    store = PostgresOutbox(pg_database)
    await store.init()
    # No statistics during the test (an autovacuum ANALYZE would change the first plan).
    await store.execute("ALTER TABLE strangler_outbox SET (autovacuum_enabled = false)")
    events = [
        Event(f"00000000-0000-4000-8000-{n:012d}", "order", str(n % 50), "T", {"n": n}, 1.0, {})
        for n in range(1, 20001)
    ]
    for start in range(0, len(events), 5000):
        await store.append(events[start : start + 5000])
    conn = await asyncpg.connect(pg_database)
    try:
        # A fresh table has no statistics: left alone, the planner gathers and sorts
        # the whole backlog to return the first 500 rows.
        assert "Sort" in await plan_of_pending(conn, "")
        plan = await plan_of_pending(conn, IN_SEQ_ORDER)
    finally:
        await conn.close()
    assert "Sort" not in plan and "Index Scan using strangler_outbox_pending" in plan, plan
    rows = await store.pending(500, after=100)
    assert [r.event.payload is None for r in rows] == [True] * 500  # the value carries it
    assert [r.seq for r in rows] == list(range(101, 601))
    assert [json.loads(r.event.encoded or b"")["payload"]["n"] for r in rows[:2]] == [101, 102]
    await store.close()
