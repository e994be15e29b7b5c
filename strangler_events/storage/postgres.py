"""Opening PostgreSQL one way for every store on it (the outbox, shadow results, a
consumer's database): ``postgresql://`` URLs, a small asyncpg pool opened with a
bounded connect timeout, and dedicated connections for sessions that must outlive a
statement (an advisory lock, LISTEN).  :class:`LazyPool` is the pool every store holds:
opened on first use (one pool however many first uses come at once), closed once.

Driver errors are not translated here: each store turns them into its own errors.
:data:`UNREACHABLE` is what "the server cannot be reached (now)" looks like, and
:data:`DRIVER_ERRORS` is everything the driver raises for a failed statement or
connection (a URL that is not PostgreSQL's is one too: asyncpg parses the URL and
refuses another scheme with an ``InterfaceError`` naming it).
"""

from __future__ import annotations

import asyncio

import asyncpg

MIN_SIZE = 1
MAX_SIZE = 4
CONNECT_TIMEOUT = 5.0  # seconds to open one connection (asyncpg's own default is 60)
# Seconds a pool's close waits for connections still in use (asyncpg's own close waits for
# ever: a connection a cancelled task left mid-query kept a stopping process alive).
CLOSE_TIMEOUT = 5.0

UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # includes a connection closed under the statement
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # the server is starting or shutting down
    asyncpg.AdminShutdownError,
)
DRIVER_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE, asyncpg.PostgresError)


async def create_pool(
    url: str,
    *,
    max_size: int = MAX_SIZE,
    connect_timeout: float = CONNECT_TIMEOUT,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """A pool of ``MIN_SIZE``..``max_size`` connections; the first one is opened now, so
    an unreachable server or a refused login is raised here (as a driver error)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url,
        min_size=MIN_SIZE,
        max_size=max_size,
        timeout=connect_timeout,
        command_timeout=command_timeout,
    )
    return pool


async def connect(url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> asyncpg.Connection:
    """One connection of its own, outside any pool (its session is the caller's)."""
    conn: asyncpg.Connection = await asyncpg.connect(url, timeout=connect_timeout)
    return conn


class LazyPool:
    """A store's pool, opened by the first :meth:`get` (concurrent first calls share the
    one pool) with :func:`create_pool`'s arguments; driver errors pass through."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int = MAX_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await create_pool(
                        self.url,
                        max_size=self.max_size,
                        connect_timeout=self.connect_timeout,
                        command_timeout=self.command_timeout,
                    )
        return self._pool

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the pool: gracefully for up to ``timeout`` seconds, then by terminating
        the connections still in use."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout)
            except TimeoutError:
                pool.terminate()
