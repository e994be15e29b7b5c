"""The PostgreSQL result store (asyncpg; the only shadow module that imports it; pools are
opened by :mod:`strangler_events.storage.postgres`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from shadow.store.port import COLUMNS, Result, StoreError, from_row, to_row
from strangler_events.storage.postgres import DRIVER_ERRORS, LazyPool

SCHEMA = """
CREATE TABLE IF NOT EXISTS strangler_shadow (
    n               BIGSERIAL PRIMARY KEY,
    at              DOUBLE PRECISION NOT NULL,
    route           TEXT NOT NULL,
    method          TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    count           INTEGER NOT NULL DEFAULT 1,
    reason          TEXT NOT NULL DEFAULT '',
    request_id      TEXT NOT NULL DEFAULT '',
    primary_backend TEXT NOT NULL DEFAULT '',
    shadow_backend  TEXT NOT NULL DEFAULT '',
    primary_status  INTEGER,
    shadow_status   INTEGER,
    primary_ms      DOUBLE PRECISION,
    shadow_ms       DOUBLE PRECISION,
    diffs           TEXT NOT NULL DEFAULT '[]',
    noise           TEXT,
    values_kept     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS strangler_shadow_at ON strangler_shadow (at);
"""


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise StoreError(f"PostgreSQL shadow store: {exc}") from exc


class PostgresResults:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = LazyPool(url, max_size=2)

    async def _get(self) -> asyncpg.Pool:
        async with translated():
            return await self._pool.get()

    async def init(self) -> None:
        pool = await self._get()
        async with translated():
            await pool.execute(SCHEMA)

    async def add(self, results: Sequence[Result]) -> None:
        if not results:
            return
        pool = await self._get()
        marks = ", ".join(f"${i + 1}" for i in range(len(COLUMNS.split(","))))
        async with translated(), pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                f"INSERT INTO strangler_shadow ({COLUMNS}) VALUES ({marks})",
                [to_row(r) for r in results],
            )

    async def results(self, since: float = 0.0, route: str | None = None) -> list[Result]:
        pool = await self._get()
        sql = f"SELECT {COLUMNS} FROM strangler_shadow WHERE at >= $1"
        args: list[object] = [since]
        if route is not None:
            sql += " AND route = $2"
            args.append(route)
        async with translated():
            rows = await pool.fetch(sql + " ORDER BY at, n", *args)
        return [from_row(tuple(row)) for row in rows]

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints by itself, off the writers' connections."""

    async def close(self) -> None:
        await self._pool.close()
