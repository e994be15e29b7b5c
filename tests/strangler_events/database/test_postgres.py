"""PostgreSQL adapter: placeholders and errors translated at the boundary."""

from __future__ import annotations

import pytest

from strangler_events.database.port import DatabaseError
from strangler_events.database.postgres import PostgresDatabase, dollar
from tests.harness import free_port


def test_placeholders() -> None:
    assert dollar("INSERT INTO t (a, b) VALUES (?, ?)") == "INSERT INTO t (a, b) VALUES ($1, $2)"


async def test_unreachable_server_is_a_database_error() -> None:
    db = PostgresDatabase(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(DatabaseError, match="PostgreSQL"):
        await db.script("SELECT 1")
    await db.close()
