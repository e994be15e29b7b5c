"""SQLite-specific outbox behaviour: the leadership lease expires, paths from URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.capture.outbox import OutboxError
from gateway.capture.outbox.sqlite import SqliteOutbox, sqlite_path
from gateway.capture.rules import Doubt
from tests.eventually import eventually


async def test_lease_expires_and_a_standby_takes_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    a, b = SqliteOutbox(url), SqliteOutbox(url)
    await a.init()
    assert await a.lead("a", 0.2)
    assert not await b.lead("b", 0.2)
    # a stops renewing (it died): once its 0.2 s lease runs out, b takes over.
    await eventually(lambda: b.lead("b", 5), timeout=5, message="b leading after a's lease")
    assert not await a.lead("a", 5)
    await a.close()
    await b.close()


def test_paths_from_urls() -> None:
    assert sqlite_path("sqlite:///./x.db") == "./x.db"
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    with pytest.raises(OutboxError):
        sqlite_path("sqlite:/x.db")


async def test_a_first_schema_doubts_table_is_rebuilt_keyed_on_capture_id(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE strangler_outbox_doubts (n INTEGER PRIMARY KEY AUTOINCREMENT,"
            " request_id TEXT NOT NULL UNIQUE, route TEXT, method TEXT, path TEXT,"
            " status INTEGER, reason TEXT NOT NULL, event_type TEXT, occurred_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO strangler_outbox_doubts (request_id, reason, occurred_at)"
            " VALUES ('r1', 'old', 1.0)"
        )
    store = SqliteOutbox(f"sqlite:///{path}")
    await store.init()
    await store.init()  # idempotent
    await store.append([], [Doubt("r1", "orders", "PUT", "/a/1", None, "new", capture_id="c9")])
    assert [(d.request_id, d.capture_id, d.reason) for d in await store.doubts()] == [
        ("r1", "r1", "old"),
        ("r1", "c9", "new"),
    ]
    await store.close()
