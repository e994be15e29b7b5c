"""The consumer database contract, on SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strangler_events.database.factory import open_database
from strangler_events.database.port import Database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (
        f"sqlite:///{tmp_path}/c.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    database = open_database(url)
    await database.script("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    try:
        yield database
    finally:
        await database.close()


async def test_commit_and_rowcounts(db: Database) -> None:
    async with db.transaction() as tx:
        assert await tx.execute("INSERT INTO t (k, n) VALUES (?, ?)", "a", 1) == 1
        await tx.executemany("INSERT INTO t (k, n) VALUES (?, ?)", [("b", 2), ("c", 3)])
        assert (
            await tx.execute("INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT DO NOTHING", "a", 9)
            == 0
        )
        assert await tx.execute("UPDATE t SET n = n + 1 WHERE n >= ?", 2) == 2
    async with db.transaction() as tx:
        assert await tx.fetch("SELECT k, n FROM t ORDER BY k") == [("a", 1), ("b", 3), ("c", 4)]


async def test_an_exception_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (k, n) VALUES (?, ?)", "x", 1)
            raise RuntimeError("handler failed")
    async with db.transaction() as tx:
        assert await tx.fetch("SELECT k FROM t") == []


async def test_on_commit_runs_after_the_commit_and_never_after_a_rollback(db: Database) -> None:
    seen: list[object] = []

    async def rows() -> list[tuple[object, ...]]:
        async with db.transaction() as other:
            return await other.fetch("SELECT k FROM t")

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t (k, n) VALUES (?, ?)", "a", 1)
        tx.on_commit(lambda: seen.append("first"))
        tx.on_commit(lambda: seen.append("second"))
        assert seen == []
    assert seen == ["first", "second"]
    assert await rows() == [("a",)]  # committed by the time the callbacks ran
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            tx.on_commit(lambda: seen.append("rolled back"))
            raise RuntimeError("handler failed")
    assert seen == ["first", "second"]
