"""The embedded SQLite result store.

Writes (:meth:`SqliteResults.init` and :meth:`SqliteResults.add`, which the gateway's
workers call) go through a plain ``sqlite3`` connection on the caller's thread: a flush is
one short ``BEGIN IMMEDIATE`` ... ``COMMIT`` every half second, WAL with
``synchronous=NORMAL`` (no fsync per commit), waiting at most ``WRITE_BUSY_MS`` for another
process's write lock before it fails and the mirror keeps the batch for the next flush.
The statements themselves also run on the loop: a flush of the mirror's batch (at most
``shadow.mirror.FLUSH_MAX`` results), a fraction of a millisecond for a second's results.
The WAL's checkpoint, which copies it into the database file and fsyncs both (10-20 ms
on a test machine, a stall for every request on the worker's loop), is not theirs: the
supervisor's reader runs :meth:`SqliteResults.checkpoint` every half minute, in its
thread (the first commit after it restarts the WAL and fsyncs its header, once); a
writer checkpoints only when the WAL passes ``WRITER_CHECKPOINT_PAGES`` (for an
embedding with no supervisor).  A worker starts no thread for it: aiosqlite's thread
cost a worker about 2 µs of CPU per proxied request (5%) even when it only wrote a few
rows a second (see :func:`strangler_events.storage.sqlite.connect_now`).

Reads (:meth:`SqliteResults.results`: the dashboard and the rollout gates, in the
supervisor) go through aiosqlite, opened by the toolkit's SQLite seam, so that a large
read never blocks the admin's event loop.  An in-memory database (``sqlite:///``) is one
connection, so it reads through the writer's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Final

import aiosqlite

from shadow.store.port import COLUMNS, Result, StoreError, from_row, to_row
from strangler_events.storage.sqlite import Lazy, LazyNow
from strangler_events.storage.sqlite import sqlite_path as parse_url

WRITE_BUSY_MS: Final = 100  # how long a flush waits for another process's write lock
WRITER_CHECKPOINT_PAGES: Final = 16_384  # 64 MiB of 4 KiB pages (SQLite's default: 1,000)
MARKS: Final = ", ".join("?" * len(COLUMNS.split(",")))
INSERT: Final = f"INSERT INTO strangler_shadow ({COLUMNS}) VALUES ({MARKS})"

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
    with translated_now():
        yield


@contextmanager
def translated_now() -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError, OSError, TypeError, OverflowError) as exc:
        # TypeError and OverflowError: a value SQLite cannot bind (the batch is kept)
        raise StoreError(f"SQLite shadow store: {exc}") from exc


class SqliteResults:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._sqlite = Lazy(self.path, "NORMAL")
        self._lock = self._sqlite.lock
        self._writer = LazyNow(self.path, WRITE_BUSY_MS, "NORMAL", WRITER_CHECKPOINT_PAGES)

    async def init(self) -> None:
        with translated_now():
            self._writer.get().executescript(SCHEMA)

    async def add(self, results: Sequence[Result]) -> None:
        if not results:
            return
        rows = [to_row(r) for r in results]
        with translated_now():
            db = self._writer.get()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(INSERT, rows)
                db.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):  # nothing to undo when BEGIN or COMMIT failed
                    db.execute("ROLLBACK")
                if db.in_transaction:  # ROLLBACK failed: never keep the write lock
                    self._writer.close()
                raise

    async def results(self, since: float = 0.0, route: str | None = None) -> list[Result]:
        sql = f"SELECT {COLUMNS} FROM strangler_shadow WHERE at >= ?"
        args: list[object] = [since]
        if route is not None:
            sql += " AND route = ?"
            args.append(route)
        sql += " ORDER BY at, n"
        if self.path == ":memory:":
            with translated_now():
                return [from_row(row) for row in self._writer.get().execute(sql, args)]
        db = await self._conn()
        async with translated(), self._lock:
            cursor = await db.execute(sql, args)
            return [from_row(row) for row in await cursor.fetchall()]

    async def checkpoint(self) -> None:
        """Copy the WAL's committed pages into the database file (``PASSIVE``: no writer
        or reader waits for it), through the reader's thread."""
        if self.path == ":memory:":
            return
        db = await self._conn()
        async with translated(), self._lock:
            await db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _conn(self) -> aiosqlite.Connection:
        async with translated():
            return await self._sqlite.get()

    async def close(self) -> None:
        try:
            with translated_now():
                self._writer.close()
        finally:
            await self._sqlite.close()
