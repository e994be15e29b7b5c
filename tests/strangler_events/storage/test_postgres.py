"""Opening PostgreSQL the one way every store on it does, against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from strangler_events.storage.postgres import (
    DRIVER_ERRORS,
    MAX_SIZE,
    UNREACHABLE,
    LazyPool,
    connect,
    create_pool,
)
from tests.harness import free_port


async def test_pool_opens_one_connection_now_and_grows_to_its_bound(pg_database: str) -> None:
    pool = await create_pool(pg_database, max_size=2)
    try:
        assert pool.get_min_size() == 1 and pool.get_max_size() == 2
        assert pool.get_size() == 1  # opened before create_pool returned
        assert await pool.fetchval("SELECT current_database()") == pg_database.rsplit("/", 1)[1]
        async with pool.acquire() as a, pool.acquire() as b:
            pids = {await a.fetchval("SELECT pg_backend_pid()")}
            pids.add(await b.fetchval("SELECT pg_backend_pid()"))
        assert len(pids) == 2 and pool.get_size() == 2
    finally:
        await pool.close()


async def test_default_size_and_command_timeout(pg_database: str) -> None:
    pool = await create_pool(pg_database, command_timeout=0.2)
    try:
        assert pool.get_max_size() == MAX_SIZE
        with pytest.raises(UNREACHABLE):
            await pool.execute("SELECT pg_sleep(5)")
    finally:
        await pool.close()


async def test_a_dedicated_connection_keeps_its_session(pg_database: str) -> None:
    first = await connect(pg_database)
    second = await connect(pg_database)
    try:
        assert await first.fetchval("SELECT pg_try_advisory_lock(42)") is True
        assert await second.fetchval("SELECT pg_try_advisory_lock(42)") is False
        await first.close()  # the session ends: the lock is free at once
        assert await second.fetchval("SELECT pg_try_advisory_lock(42)") is True
    finally:
        for conn in (first, second):
            if not conn.is_closed():
                await conn.close()


async def test_no_server_is_unreachable() -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    with pytest.raises(UNREACHABLE, match="127.0.0.1"):
        await create_pool(url)
    with pytest.raises(UNREACHABLE):
        await connect(url)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_silent_server_times_out_within_the_connect_timeout(silent_port: int) -> None:
    url = f"postgresql://nobody@127.0.0.1:{silent_port}/none"
    started = time.monotonic()
    with pytest.raises(UNREACHABLE):
        await create_pool(url, connect_timeout=0.3)
    with pytest.raises(UNREACHABLE):
        await connect(url, connect_timeout=0.3)
    assert time.monotonic() - started < 5


async def test_a_refused_login_is_a_driver_error_not_unreachable(pg_database: str) -> None:
    missing = pg_database.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(DRIVER_ERRORS) as caught:
        await create_pool(missing)
    assert isinstance(caught.value, asyncpg.PostgresError)
    assert not isinstance(caught.value, UNREACHABLE)
    assert "no_such_database" in str(caught.value)


async def test_another_scheme_is_refused_by_name() -> None:
    with pytest.raises(DRIVER_ERRORS, match="got 'mysql'"):
        await create_pool("mysql://app@127.0.0.1/orders")


async def test_a_lazy_pool_opens_once_for_concurrent_first_uses_and_again_after_close(
    pg_database: str,
) -> None:
    lazy = LazyPool(pg_database, max_size=2, command_timeout=7)
    first, second = await asyncio.gather(lazy.get(), lazy.get())
    assert first is second and first.get_max_size() == 2
    assert await first.fetchval("SELECT 1") == 1
    await lazy.close()
    assert first.is_closing()
    again = await lazy.get()
    assert again is not first and await again.fetchval("SELECT 2") == 2
    await lazy.close()
    await lazy.close()  # closing twice is harmless


async def test_a_lazy_pool_closes_within_its_bound_with_a_connection_still_in_use(
    pg_database: str,
) -> None:
    lazy = LazyPool(pg_database, max_size=2)
    pool = await lazy.get()
    held = await pool.acquire()  # never released, as by a task stuck mid-query
    started = time.monotonic()
    await asyncio.wait_for(lazy.close(timeout=0.5), 10)  # asyncpg's own close: for ever
    assert time.monotonic() - started < 5 and pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # the connection it held is gone
        await held.fetchval("SELECT 1")


async def test_a_lazy_pool_passes_driver_errors_through_and_tries_again() -> None:
    lazy = LazyPool(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    for _ in range(2):  # nothing is kept from a failed open
        with pytest.raises(UNREACHABLE):
            await lazy.get()
