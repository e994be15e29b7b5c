"""SQLite-specific outbox behaviour: the leadership lease expires, paths from URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.outbox import OutboxError
from gateway.outbox_sqlite import SqliteOutbox, sqlite_path


async def test_lease_expires_and_a_standby_takes_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    a, b = SqliteOutbox(url), SqliteOutbox(url)
    await a.init()
    assert await a.lead("a", 0.2)
    assert not await b.lead("b", 0.2)
    await asyncio.sleep(0.3)  # a stopped renewing (it died)
    assert await b.lead("b", 5)
    assert not await a.lead("a", 5)
    await a.close()
    await b.close()


def test_paths_from_urls() -> None:
    assert sqlite_path("sqlite:///./x.db") == "./x.db"
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    with pytest.raises(OutboxError):
        sqlite_path("sqlite:/x.db")
