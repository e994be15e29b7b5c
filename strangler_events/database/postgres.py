"""The consumer database on PostgreSQL (asyncpg; pools are opened by
:mod:`strangler_events.storage.postgres`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from strangler_events.database.port import DatabaseError
from strangler_events.storage.postgres import DRIVER_ERRORS, LazyPool

_MARK = re.compile(r"\?")


def dollar(sql: str) -> str:
    """``?`` placeholders -> ``$1, $2, ...`` (statements here carry no literal '?')."""
    counter = iter(range(1, 10_000))
    return _MARK.sub(lambda _: f"${next(counter)}", sql)


class _Tx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.committed: list[Callable[[], None]] = []

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self.conn.execute(dollar(sql), *args)
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(dollar(sql), *args)]

    def on_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(dollar(sql), rows)


class PostgresDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = LazyPool(url)

    async def _get(self) -> asyncpg.Pool:
        try:
            return await self._pool.get()
        except DRIVER_ERRORS as exc:
            raise DatabaseError(f"PostgreSQL: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        pool = await self._get()
        try:
            async with pool.acquire() as conn, conn.transaction():
                tx = _Tx(conn)
                yield tx
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            # the connection failed; a statement's or a handler's error passes through as is
            raise DatabaseError(f"PostgreSQL: {exc}") from exc
        for callback in tx.committed:
            callback()

    async def script(self, sql: str) -> None:
        pool = await self._get()
        try:
            await pool.execute(sql)
        except DRIVER_ERRORS as exc:
            raise DatabaseError(f"PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()
