"""Opening SQLite the one way every embedded store does."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest

from gateway.tasks import spawn
from strangler_events.storage.sqlite import (
    Lazy,
    connect,
    connect_now,
    immediate,
    sqlite_path,
)


def test_urls() -> None:
    assert sqlite_path("sqlite:///./x.db") == "./x.db"
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite:///") == ":memory:"
    with pytest.raises(ValueError, match="expected sqlite:///PATH, got 'sqlite://x.db'"):
        sqlite_path("sqlite://x.db")


async def test_connect_makes_the_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "store.db"
    db = await connect(str(path), "NORMAL")
    try:
        mode = await (await db.execute("PRAGMA journal_mode")).fetchone()
        sync = await (await db.execute("PRAGMA synchronous")).fetchone()
        busy = await (await db.execute("PRAGMA busy_timeout")).fetchone()
        assert mode is not None and mode[0] == "wal"
        assert sync is not None and sync[0] == 1  # NORMAL
        assert busy is not None and busy[0] == 5000
    finally:
        await db.close()
    assert path.exists()


async def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(sqlite3.OperationalError):
        await connect(str(tmp_path / "dir.db"))


async def test_lazy_opens_on_first_use_once_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    lazy = Lazy(str(path), "NORMAL")
    assert not path.exists()
    db = await lazy.get()
    assert await lazy.get() is db and path.exists()
    await lazy.close()
    await lazy.close()  # closing twice is harmless
    again = await lazy.get()  # and a closed one opens anew
    assert again is not db
    await lazy.close()


class Announcing:
    """The connection, announcing when one statement has been handed to aiosqlite's
    thread: from then on that statement runs whatever happens to its caller."""

    def __init__(self, db: aiosqlite.Connection, statement: str) -> None:
        self.db = db
        self.statement = statement
        self.queued = asyncio.Event()

    async def execute(self, sql: str, *args: Any) -> aiosqlite.Cursor:
        if sql == self.statement:
            self.queued.set()
        return await self.db.execute(sql, *args)


async def _cancel_in(statement: str, tmp_path: Path) -> tuple[aiosqlite.Connection, int]:
    """Insert a row inside ``immediate`` and cancel the writer once ``statement`` is
    queued; returns the connection and how many rows were stored."""
    db = await connect(str(tmp_path / "tx.db"))
    await db.execute("CREATE TABLE t (n INTEGER)")
    announcing = Announcing(db, statement)

    async def write() -> None:
        async with immediate(cast(aiosqlite.Connection, announcing)):
            await db.execute("INSERT INTO t VALUES (1)")

    writer = spawn(write(), name="writer")
    await announcing.queued.wait()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    rows = await (await db.execute("SELECT count(*) FROM t")).fetchone()
    assert rows is not None
    return db, int(rows[0])


async def test_a_write_cancelled_during_its_commit_raises_the_cancellation(
    tmp_path: Path,
) -> None:
    # The COMMIT already queued runs, so the ROLLBACK after it finds no transaction;
    # that error must not replace the cancellation (a caller that catches store
    # errors would otherwise retry a batch that was stored, and never stop).
    db, stored = await _cancel_in("COMMIT", tmp_path)
    try:
        assert stored == 1
        assert not db.in_transaction
    finally:
        await db.close()


async def test_a_write_cancelled_during_begin_leaves_no_transaction_open(tmp_path: Path) -> None:
    db, stored = await _cancel_in("BEGIN IMMEDIATE", tmp_path)
    try:
        assert stored == 0
        assert not db.in_transaction
        async with immediate(db):  # the connection takes the next transaction
            await db.execute("INSERT INTO t VALUES (2)")
        rows = await (await db.execute("SELECT n FROM t")).fetchall()
        assert [tuple(r) for r in rows] == [(2,)]
    finally:
        await db.close()


async def test_an_error_in_the_transaction_rolls_it_back_and_propagates(tmp_path: Path) -> None:
    db = await connect(str(tmp_path / "tx.db"))
    try:
        await db.execute("CREATE TABLE t (n INTEGER)")
        with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
            async with immediate(db):
                await db.execute("INSERT INTO t VALUES (1)")
                await db.execute("INSERT INTO missing VALUES (1)")
        rows = await (await db.execute("SELECT count(*) FROM t")).fetchone()
        assert rows is not None and rows[0] == 0 and not db.in_transaction
    finally:
        await db.close()


def test_connect_now_makes_the_directory_and_uses_wal(tmp_path: Path) -> None:
    db = connect_now(str(tmp_path / "deeper" / "now.db"), 100, "NORMAL")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert db.execute("PRAGMA busy_timeout").fetchone() == (100,)
    finally:
        db.close()
