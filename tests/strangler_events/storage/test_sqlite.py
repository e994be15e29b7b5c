"""Opening SQLite the one way every embedded store does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from strangler_events.storage.sqlite import Lazy, connect, sqlite_path


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
