"""The embedded SQLite rollout store (opened by the toolkit's SQLite seam, WAL so every
worker process reads it while the supervisor writes).  Replica counters are stamped
with this machine's clock.

What a gateway worker calls (:meth:`SqliteRollouts.init` and the reads, once a second
from :mod:`gateway.rollout.follower`) runs on the caller's thread through a plain
``sqlite3`` connection, waiting at most ``READ_BUSY_MS`` for a lock, so that a worker
starts no thread for it (see :func:`strangler_events.storage.sqlite.connect_now`).
Writes (the supervisor's driver) go through aiosqlite.  An in-memory database
(``sqlite:///``) is one connection, so there everything goes through aiosqlite."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Final

import aiosqlite

from gateway.rollout.evidence import Counts
from gateway.rollout.machine import State
from gateway.rollout.store.port import COUNTERS_RETENTION, Conflict, StoreError
from strangler_events.storage.sqlite import Lazy, LazyNow, sqlite_path

READ_BUSY_MS: Final = 100  # how long a worker's read waits for a lock

SCHEMA = """
CREATE TABLE IF NOT EXISTS strangler_rollout (
    route      TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    state      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS strangler_rollout_leader (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS strangler_rollout_counters (
    instance TEXT NOT NULL,
    route    TEXT NOT NULL,
    counts   TEXT NOT NULL,
    seen_at  REAL NOT NULL,
    PRIMARY KEY (instance, route)
);
"""


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    with translated_now():
        yield


@contextmanager
def translated_now() -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError, OSError) as exc:
        raise StoreError(f"SQLite rollout store: {exc}") from exc


class SqliteRollouts:
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.path = sqlite_path(url)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        self._sqlite = Lazy(self.path)
        self._reader = LazyNow(self.path, READ_BUSY_MS)

    async def _conn(self) -> aiosqlite.Connection:
        async with translated():
            return await self._sqlite.get()

    def _now(self) -> sqlite3.Connection | None:
        """The caller's-thread connection; None for an in-memory database."""
        return None if self.path == ":memory:" else self._reader.get()

    async def init(self) -> None:
        with translated_now():
            now = self._now()
            if now is not None:
                now.executescript(SCHEMA)
                return
        db = await self._conn()
        async with translated(), self._sqlite.lock:
            await db.executescript(SCHEMA)

    async def get(self, route: str) -> tuple[State, int] | None:
        return (await self._select(route)).get(route)

    async def all(self) -> dict[str, tuple[State, int]]:
        return await self._select(None)

    async def _select(self, route: str | None) -> dict[str, tuple[State, int]]:
        sql = "SELECT route, version, state FROM strangler_rollout"
        args: tuple[str, ...] = ()
        if route is not None:
            sql, args = sql + " WHERE route = ?", (route,)
        with translated_now():
            now = self._now()
            rows = None if now is None else now.execute(sql, args).fetchall()
        if rows is None:
            db = await self._conn()
            async with translated(), self._sqlite.lock:
                rows = list(await (await db.execute(sql, args)).fetchall())
        return {r[0]: (State.from_json(json.loads(r[2])), int(r[1])) for r in rows}

    async def put(self, state: State, version: int) -> int:
        db = await self._conn()
        text = json.dumps(state.to_json())
        async with translated(), self._sqlite.lock:
            if version == 0:
                cursor = await db.execute(
                    "INSERT INTO strangler_rollout (route, version, state, updated_at) "
                    "VALUES (?, 1, ?, ?) ON CONFLICT (route) DO NOTHING",
                    (state.route, text, time.time()),
                )
            else:
                cursor = await db.execute(
                    "UPDATE strangler_rollout SET version = version + 1, state = ?, "
                    "updated_at = ? WHERE route = ? AND version = ?",
                    (text, time.time(), state.route, version),
                )
        if cursor.rowcount != 1:
            raise Conflict(
                f"the rollout of {state.route} changed meanwhile (not version {version})"
            )
        return version + 1

    async def lead(self, holder: str, ttl: float) -> bool:
        db = await self._conn()
        now = time.time()
        async with translated(), self._sqlite.lock:
            cursor = await db.execute(
                "INSERT INTO strangler_rollout_leader (name, holder, expires_at)"
                " VALUES ('driver', ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE strangler_rollout_leader.holder = excluded.holder"
                " OR strangler_rollout_leader.expires_at < ?",
                (holder, now + ttl, now),
            )
        return cursor.rowcount == 1

    async def leader(self) -> str | None:
        db = await self._conn()
        async with translated(), self._sqlite.lock:
            row = await (
                await db.execute(
                    "SELECT holder FROM strangler_rollout_leader"
                    " WHERE name = 'driver' AND expires_at >= ?",
                    (time.time(),),
                )
            ).fetchone()
        return None if row is None else str(row[0])

    async def resign(self, holder: str) -> None:
        db = await self._conn()
        async with translated(), self._sqlite.lock:
            await db.execute("DELETE FROM strangler_rollout_leader WHERE holder = ?", (holder,))

    async def publish(self, instance: str, counters: Mapping[str, Counts]) -> None:
        db = await self._conn()
        now = time.time()
        rows = [(instance, r, json.dumps(c.to_json()), now) for r, c in counters.items()]
        async with translated(), self._sqlite.lock:
            await db.executemany(
                "INSERT INTO strangler_rollout_counters (instance, route, counts, seen_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (instance, route) DO UPDATE"
                " SET counts = excluded.counts, seen_at = excluded.seen_at",
                rows,
            )
            await db.execute(
                "DELETE FROM strangler_rollout_counters WHERE seen_at < ?",
                (now - COUNTERS_RETENTION,),
            )

    async def counters(self, route: str, max_age: float) -> dict[str, Counts]:
        db = await self._conn()
        async with translated(), self._sqlite.lock:
            rows = await (
                await db.execute(
                    "SELECT instance, counts FROM strangler_rollout_counters"
                    " WHERE route = ? AND seen_at >= ?",
                    (route, time.time() - max_age),
                )
            ).fetchall()
        return {str(r[0]): Counts.from_json(json.loads(r[1])) for r in rows}

    async def close(self) -> None:
        try:
            with translated_now():
                self._reader.close()
        finally:
            await self._sqlite.close()
