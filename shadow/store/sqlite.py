"""The embedded SQLite result store (aiosqlite, opened by the toolkit's SQLite seam)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiosqlite

from shadow.store.port import COLUMNS, Result, StoreError, from_row, to_row
from strangler_events.storage.sqlite import Lazy, immediate
from strangler_events.storage.sqlite import sqlite_path as parse_url

SCHEMA = """
CREATE TABLE IF NOT EXISTS strangler_shadow (
    n               INTEGER PRIMARY KEY AUTOINCREMENT,
    at              REAL NOT NULL,
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
    primary_ms      REAL,
    shadow_ms       REAL,
    diffs           TEXT NOT NULL DEFAULT '[]',
    noise           TEXT,
    values_kept     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS strangler_shadow_at ON strangler_shadow (at);
"""


def sqlite_path(url: str) -> str:
    try:
        return parse_url(url)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError) as exc:
        raise StoreError(f"SQLite shadow store: {exc}") from exc


class SqliteResults:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._sqlite = Lazy(self.path, "NORMAL")
        self._lock = self._sqlite.lock

    async def _conn(self) -> aiosqlite.Connection:
        async with translated():
            return await self._sqlite.get()

    async def init(self) -> None:
        db = await self._conn()
        async with translated(), self._lock:
            await db.executescript(SCHEMA)

    async def add(self, results: Sequence[Result]) -> None:
        if not results:
            return
        db = await self._conn()
        marks = ", ".join("?" * len(COLUMNS.split(",")))
        async with translated(), self._lock:
            async with immediate(db):
                await db.executemany(
                    f"INSERT INTO strangler_shadow ({COLUMNS}) VALUES ({marks})",
                    [to_row(r) for r in results],
                )

    async def results(self, since: float = 0.0, route: str | None = None) -> list[Result]:
        db = await self._conn()
        sql = f"SELECT {COLUMNS} FROM strangler_shadow WHERE at >= ?"
        args: list[object] = [since]
        if route is not None:
            sql += " AND route = ?"
            args.append(route)
        async with translated(), self._lock:
            cursor = await db.execute(sql + " ORDER BY at, n", args)
            return [from_row(row) for row in await cursor.fetchall()]

    async def close(self) -> None:
        await self._sqlite.close()
