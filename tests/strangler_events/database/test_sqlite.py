"""SQLite adapter: URL parsing and errors translated at the boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler_events.database.port import DatabaseError
from strangler_events.database.sqlite import SqliteDatabase, sqlite_path


def test_paths() -> None:
    assert sqlite_path("sqlite:///./a.db") == "./a.db"
    with pytest.raises(DatabaseError, match="expected sqlite:///PATH"):
        sqlite_path("sqlite:/a.db")


async def test_bad_sql_is_a_database_error(tmp_path: Path) -> None:
    db = SqliteDatabase(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(DatabaseError, match="syntax error"):
        await db.script("CREATE TABLE (")
    (tmp_path / "dir.db").mkdir()
    broken = SqliteDatabase(f"sqlite:///{tmp_path}/dir.db")
    with pytest.raises(DatabaseError, match="SQLite"):
        async with broken.transaction():
            pass
    await db.close()
    await broken.close()
