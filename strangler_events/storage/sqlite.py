"""Opening SQLite one way for every embedded store (the outbox, shadow results, a
consumer's database): ``sqlite:///PATH`` URLs, WAL so that readers and one writer
work side by side across processes, and a busy timeout rather than instant
"database is locked" errors.  Errors are left to each store to translate.
"""

from __future__ import annotations

import asyncio
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
