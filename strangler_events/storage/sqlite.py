"""Opening SQLite one way for every embedded store (the outbox, shadow results, a
consumer's database): ``sqlite:///PATH`` URLs, WAL so that readers and one writer
work side by side across processes, and a busy timeout rather than instant
"database is locked" errors.  Errors are left to each store to translate.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aiosqlite

BUSY_TIMEOUT_MS = 5000


def sqlite_path(url: str) -> str:
    """``sqlite:///./x.db`` -> ``./x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``.
    Raises ValueError for anything else."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"expected sqlite:///PATH, got {url!r}")
    return url[len("sqlite:///") :] or ":memory:"


async def connect(path: str, synchronous: str | None = None) -> aiosqlite.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            await db.execute(f"PRAGMA synchronous={synchronous}")
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except BaseException:
        await db.close()
        raise
    return db


def connect_now(
    path: str, busy_ms: int, synchronous: str | None = None, autocheckpoint: int | None = None
) -> sqlite3.Connection:
    """:func:`connect`'s settings on a plain ``sqlite3`` connection, for the caller's own
    thread.  A gateway worker reaches the shadow results and the rollout weights this way,
    because a Python thread in a worker costs every request: aiosqlite's cost about 2 µs
    of CPU per proxied request, and an idle ``threading.Thread`` alone about 1.6 µs
    (measured with ``strangler run --workers 1`` at 16 connections).  Part of it is glibc,
    which takes its multi-threaded paths in ``read``, ``write`` and ``malloc`` once a
    process has a second thread.  (The capture outbox, whose writes must be durable before
    the client hears back, still goes through aiosqlite.)  The statements block the event
    loop, so they must be short and ``busy_ms`` small; ``autocheckpoint`` (pages) sets
    when a commit of this connection checkpoints the WAL itself."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=busy_ms / 1000, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous={synchronous}")
        if autocheckpoint is not None:
            db.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    except BaseException:
        db.close()
        raise
    return db


async def rollback(db: aiosqlite.Connection) -> None:
    """Roll back whatever transaction is open, if any, for a caller that is already
    handling an exception (a cancellation included): that exception is the one to
    propagate.  ``ROLLBACK`` fails with "no transaction is active" when the statement
    the caller was cancelled in (aiosqlite runs what it has queued) was the ``COMMIT``
    and it went through, or when ``BEGIN`` itself failed; either way nothing is left
    to undo, so the error is dropped rather than raised over the original one."""
    with suppress(sqlite3.Error, ValueError):
        await db.execute("ROLLBACK")


@asynccontextmanager
async def immediate(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction; on any exception it is rolled
    back (see :func:`rollback`) and that exception propagates unchanged.  A caller
    cancelled during ``COMMIT`` sees the cancellation even though the commit may
    have gone through, so a cancelled write is "maybe stored", never "stored and
    reported failed"."""
    try:
        await db.execute("BEGIN IMMEDIATE")
        yield
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise


class Lazy:
    """A store's one connection, opened on first use, and the lock that keeps its
    statements (and transactions) from interleaving."""

    def __init__(self, path: str, synchronous: str | None = None) -> None:
        self.path = path
        self.synchronous = synchronous
        self.lock = asyncio.Lock()
        self._db: aiosqlite.Connection | None = None

    async def get(self) -> aiosqlite.Connection:
        if self._db is None:
            self._db = await connect(self.path, self.synchronous)
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()


class LazyNow:
    """:class:`Lazy` for a :func:`connect_now` connection: opened on first use, on the
    caller's thread (so no lock: its statements never interleave)."""

    def __init__(
        self,
        path: str,
        busy_ms: int,
        synchronous: str | None = None,
        autocheckpoint: int | None = None,
    ) -> None:
        self.path = path
        self.busy_ms = busy_ms
        self.synchronous = synchronous
        self.autocheckpoint = autocheckpoint
        self._db: sqlite3.Connection | None = None

    def get(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect_now(self.path, self.busy_ms, self.synchronous, self.autocheckpoint)
        return self._db

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
