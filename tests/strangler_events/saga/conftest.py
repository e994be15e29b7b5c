"""The saga tests' databases: each test runs on SQLite and on a real PostgreSQL, with
the gateway's outbox table made by its own store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.capture.outbox import OutboxStore, open_store
from strangler_events.database.factory import open_database
from strangler_events.database.port import Database


@pytest.fixture
async def stores(url: str) -> AsyncIterator[tuple[Database, OutboxStore]]:
    """The consumer database and the outbox store on ``url`` (outbox table made)."""
    box = open_store(url)
    await box.init()
    database = open_database(url)
    try:
        yield database, box
    finally:
        await database.close()
        await box.close()
