"""The consumer database on SQLite (aiosqlite, opened by :mod:`strangler_events.storage.sqlite`)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from strangler_events.database.port import DatabaseError
from strangler_events.storage.sqlite import Lazy, immediate
from strangler_events.storage.sqlite import sqlite_path as parse_url


def sqlite_path(url: str) -> str:
    try:
        return parse_url(url)
    except ValueError as exc:
        raise DatabaseError(str(exc)) from None


class _Tx:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.committed: list[Callable[[], None]] = []

    async def execute(self, sql: str, *args: Any) -> int:
        cursor = await self.db.execute(sql, args)
        return int(cursor.rowcount)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        cursor = await self.db.execute(sql, args)
        return [tuple(r) for r in await cursor.fetchall()]

    def on_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.db.executemany(sql, rows)


class SqliteDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._sqlite = Lazy(self.path)
        self._lock = self._sqlite.lock

    async def _conn(self) -> aiosqlite.Connection:
        try:
            return await self._sqlite.get()
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseError(f"SQLite {self.path}: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        db = await self._conn()
        async with self._lock:
            tx = _Tx(db)
            stage = "begin"  # the body's own errors pass through as they are
            try:
                async with immediate(db):
                    stage = "body"
                    yield tx
                    stage = "commit"
            except sqlite3.Error as exc:
                if stage == "body":
                    raise
                failed = "commit failed: " if stage == "commit" else ""
                raise DatabaseError(f"SQLite {self.path}: {failed}{exc}") from exc
        for callback in tx.committed:
            callback()

    async def script(self, sql: str) -> None:
        db = await self._conn()
        async with self._lock:
            try:
                await db.executescript(sql)
            except sqlite3.Error as exc:
                raise DatabaseError(f"SQLite {self.path}: {exc}") from exc

    async def close(self) -> None:
        await self._sqlite.close()
