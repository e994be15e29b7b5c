"""PostgreSQL-specific outbox behaviour: NOTIFY wake-ups, leadership tied to the session."""

from __future__ import annotations

import asyncio

from gateway.capture import Event
from gateway.outbox_postgres import PostgresOutbox


async def test_new_rows_wake_the_relay_without_polling(pg_database: str) -> None:
    store, writer = PostgresOutbox(pg_database), PostgresOutbox(pg_database)
    await store.init()
    await store.wait_for_rows(0.01)  # starts listening
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.ensure_future(store.wait_for_rows(5.0))
    await asyncio.sleep(0.05)
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
    assert a._leader is not None
    a._leader.terminate()  # the leader's connection dies (as when its process is killed)
    for _ in range(50):
        if await b.lead("b", 5):
            break
        await asyncio.sleep(0.05)
    assert await b.lead("b", 5)
    assert not await a.lead("a", 5)
    await a.close()
    await b.close()
