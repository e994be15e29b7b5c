"""The embedded SQLite outbox (aiosqlite, opened by :mod:`strangler_events.storage.sqlite`).

WAL mode lets gateway workers write while the relay reads.  SQLite has no
advisory locks or notifications: leadership is a lease row renewed by the
active relay (a standby takes over once it expires), and the relay polls.  The
leader's heartbeat is one row, stamped with this machine's clock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from gateway.capture.outbox.port import (
    Blocked,
    Heartbeat,
    OutboxError,
    OutboxUnavailable,
    RelayState,
    Row,
    Status,
)
from gateway.capture.rules import Doubt, Event
from strangler_events.storage.sqlite import Lazy, immediate
from strangler_events.storage.sqlite import sqlite_path as parse_url

POLL_INTERVAL = 0.02

SCHEMA = """
CREATE TABLE IF NOT EXISTS strangler_outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    aggregatetype TEXT NOT NULL,
    aggregateid   TEXT NOT NULL,
    type          TEXT NOT NULL,
    payload       TEXT,
    occurred_at   REAL NOT NULL,
    headers       TEXT NOT NULL DEFAULT '{}',
    published_at  REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    failed        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS strangler_outbox_pending
    ON strangler_outbox (seq) WHERE published_at IS NULL AND skipped = 0;
CREATE TABLE IF NOT EXISTS strangler_outbox_doubts (
    n           INTEGER PRIMARY KEY AUTOINCREMENT,
    capture_id  TEXT UNIQUE,
    request_id  TEXT NOT NULL,
    route       TEXT,
    method      TEXT,
    path        TEXT,
    status      INTEGER,
    reason      TEXT NOT NULL,
    event_type  TEXT,
    occurred_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS strangler_relay_leader (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS strangler_relay_heartbeat (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    beat    TEXT NOT NULL,
    beat_at REAL NOT NULL
);
"""

# The first schema keyed doubts on the client's request id, so two writes sent with one
# id kept one doubt: such a table is rebuilt keyed on the gateway's capture id.
REBUILD_DOUBTS = """
BEGIN IMMEDIATE;
ALTER TABLE strangler_outbox_doubts RENAME TO strangler_outbox_doubts_old;
CREATE TABLE strangler_outbox_doubts (
    n           INTEGER PRIMARY KEY AUTOINCREMENT,
    capture_id  TEXT UNIQUE,
    request_id  TEXT NOT NULL,
    route       TEXT,
    method      TEXT,
    path        TEXT,
    status      INTEGER,
    reason      TEXT NOT NULL,
    event_type  TEXT,
    occurred_at REAL NOT NULL
);
INSERT INTO strangler_outbox_doubts (n, capture_id, request_id, route, method, path, status,
    reason, event_type, occurred_at)
SELECT n, request_id, request_id, route, method, path, status, reason, event_type, occurred_at
FROM strangler_outbox_doubts_old;
DROP TABLE strangler_outbox_doubts_old;
COMMIT;
"""

PENDING = """
SELECT o.seq, o.id, o.aggregatetype, o.aggregateid, o.type, o.payload, o.occurred_at,
       o.headers, o.attempts
FROM strangler_outbox o
WHERE o.published_at IS NULL AND o.skipped = 0 AND o.failed = 0 AND o.seq > ?
  AND NOT EXISTS (
    SELECT 1 FROM strangler_outbox f
    WHERE f.failed = 1 AND f.skipped = 0 AND f.published_at IS NULL
      AND f.aggregatetype = o.aggregatetype AND f.aggregateid = o.aggregateid)
ORDER BY o.seq
LIMIT ?
"""


def sqlite_path(url: str) -> str:
    try:
        return parse_url(url)
    except ValueError as exc:
        raise OutboxError(str(exc)) from None


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        # "database is locked" past the busy timeout, "unable to open database file", ...
        raise OutboxUnavailable(f"SQLite outbox unavailable: {exc}") from exc
    except (sqlite3.Error, ValueError) as exc:
        raise OutboxError(f"SQLite outbox error: {exc}") from exc


class SqliteOutbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._sqlite = Lazy(self.path, "NORMAL")
        self._lock = self._sqlite.lock

    async def _conn(self) -> aiosqlite.Connection:
        async with translated():
            return await self._sqlite.get()

    async def _run(self, sql: str, *args: Any) -> int:
        db = await self._conn()
        async with translated(), self._lock:
            cursor = await db.execute(sql, args)
            return cursor.rowcount

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        db = await self._conn()
        async with translated(), self._lock:
            cursor = await db.execute(sql, args)
            return list(await cursor.fetchall())

    async def init(self) -> None:
        db = await self._conn()
        async with translated(), self._lock:
            found = await db.execute_fetchall(
                "SELECT sql FROM sqlite_master WHERE name = 'strangler_outbox_doubts'"
            )
            if found and "capture_id" not in str(next(iter(found))[0]):
                await db.executescript(REBUILD_DOUBTS)
            await db.executescript(SCHEMA)

    async def append(self, events: Sequence[Event], doubts: Sequence[Doubt] = ()) -> None:
        db = await self._conn()
        async with translated(), self._lock:
            async with immediate(db):
                await db.executemany(
                    "INSERT OR IGNORE INTO strangler_outbox (id, aggregatetype, aggregateid, type,"
                    " payload, occurred_at, headers) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.id,
                            e.aggregatetype,
                            e.aggregateid,
                            e.type,
                            json.dumps(e.payload),
                            e.occurred_at,
                            json.dumps(e.headers),
                        )
                        for e in events
                    ],
                )
                await db.executemany(
                    "INSERT OR IGNORE INTO strangler_outbox_doubts (capture_id, request_id, route,"
                    " method, path, status, reason, event_type, occurred_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            d.key,
                            d.request_id,
                            d.route,
                            d.method,
                            d.path,
                            d.status,
                            d.reason,
                            d.event_type,
                            d.occurred_at,
                        )
                        for d in doubts
                    ],
                )

    async def pending(self, limit: int, after: int = 0) -> list[Row]:
        rows = await self._fetch(PENDING, after, limit)
        return [
            Row(
                r[0],
                Event(
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    json.loads(r[5]) if r[5] else None,
                    r[6],
                    json.loads(r[7]),
                ),
                r[8],
            )
            for r in rows
        ]

    async def late(self, upto: int, unmarked: int) -> bool:
        """Never: one writer at a time, so rows commit in the order of their seqs."""
        return False

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        db = await self._conn()
        now = time.time()
        async with translated(), self._lock:
            await db.executemany(
                "UPDATE strangler_outbox SET published_at = ? WHERE seq = ?",
                [(now, s) for s in seqs],
            )

    async def mark_failed(self, seq: int, error: str) -> None:
        await self._run(
            "UPDATE strangler_outbox SET failed = 1, attempts = attempts + 1, last_error = ?"
            " WHERE seq = ?",
            error,
            seq,
        )

    async def skip(self, event_id: str) -> bool:
        changed = await self._run(
            "UPDATE strangler_outbox SET skipped = 1 WHERE id = ? AND published_at IS NULL",
            event_id,
        )
        return changed > 0

    async def blocked(self) -> list[Blocked]:
        rows = await self._fetch(
            "SELECT seq, id, aggregatetype, aggregateid, coalesce(last_error, '')"
            " FROM strangler_outbox WHERE failed = 1 AND skipped = 0 AND published_at IS NULL"
            " ORDER BY seq"
        )
        return [Blocked(*r) for r in rows]

    async def status(self) -> Status:
        rows = await self._fetch(
            "SELECT"
            " sum(CASE WHEN published_at IS NULL AND skipped = 0 THEN 1 ELSE 0 END),"
            " min(CASE WHEN published_at IS NULL AND skipped = 0 THEN occurred_at END),"
            " sum(CASE WHEN published_at IS NOT NULL THEN 1 ELSE 0 END),"
            " (SELECT count(*) FROM strangler_outbox_doubts),"
            " sum(CASE WHEN failed = 1 AND skipped = 0 AND published_at IS NULL THEN 1 ELSE 0 END)"
            " FROM strangler_outbox"
        )
        pending, oldest, published, doubts, blocked = rows[0]
        age = time.time() - oldest if oldest is not None else None
        return Status(int(pending or 0), age, int(published or 0), int(doubts), int(blocked or 0))

    async def doubts(self, limit: int = 1000) -> list[Doubt]:
        rows = await self._fetch(
            "SELECT request_id, route, method, path, status, reason, event_type, occurred_at,"
            " capture_id"
            " FROM strangler_outbox_doubts ORDER BY n LIMIT ?",
            limit,
        )
        return [Doubt(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8] or "") for r in rows]

    async def purge(self, older_than: float) -> int:
        return await self._run(
            "DELETE FROM strangler_outbox WHERE published_at < ?", time.time() - older_than
        )

    async def lead(self, holder: str, ttl: float) -> bool:
        now = time.time()
        changed = await self._run(
            "INSERT INTO strangler_relay_leader (name, holder, expires_at) VALUES ('relay', ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at"
            " WHERE strangler_relay_leader.holder = excluded.holder"
            " OR strangler_relay_leader.expires_at < ?",
            holder,
            now + ttl,
            now,
        )
        return changed > 0

    async def resign(self, holder: str) -> None:
        await self._run("DELETE FROM strangler_relay_leader WHERE holder = ?", holder)
        await self._run("DELETE FROM strangler_relay_heartbeat WHERE holder = ?", holder)

    async def heartbeat(self, beat: Heartbeat) -> None:
        await self._run(
            "INSERT INTO strangler_relay_heartbeat (name, holder, beat, beat_at)"
            " VALUES ('relay', ?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET holder = excluded.holder, beat = excluded.beat, beat_at = excluded.beat_at",
            beat.holder,
            json.dumps(beat.to_json()),
            time.time(),
        )

    async def relay_state(self) -> RelayState | None:
        rows = await self._fetch(
            "SELECT beat, beat_at FROM strangler_relay_heartbeat WHERE name = 'relay'"
        )
        if not rows:
            return None
        beat, at = rows[0]
        return RelayState(Heartbeat.from_json(json.loads(beat)), max(0.0, time.time() - at))

    async def wait_for_rows(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, POLL_INTERVAL))

    async def close(self) -> None:
        await self._sqlite.close()
