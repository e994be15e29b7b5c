"""The embedded SQLite event store (aiosqlite, opened by
:mod:`strangler_events.storage.sqlite`).

Each append is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write
lock first, then reads the stream's version, checks the expectation, recognises a
retried append by its ids, and inserts (with the outbox rows when publishing).  The
unique ``(stream, version)`` constraint stays as the last line of defence.

Gap-free reading needs nothing more here: SQLite has one writer at a time (across
processes too), so a writer allocates its ``AUTOINCREMENT`` positions above every
committed one and commits before the next writer can allocate any.  A reader that
has seen position p never sees a lower one appear later.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import aiosqlite

from strangler_events.eventstore import outbox as box
from strangler_events.eventstore.port import (
    ANY,
    DEFAULT_LIMIT,
    AppendResult,
    DuplicateEventId,
    EventStoreError,
    Expected,
    NewEvent,
    OutboxSpec,
    RecordedEvent,
    Snapshot,
    WrongExpectedVersion,
    category_of,
    stream_hash,
    validate_category,
    validate_group,
    validate_stream,
)
from strangler_events.eventstore.rules import (
    BeforeCommit,
    Found,
    check_expected,
    decode_row,
    dumps,
    prepare,
    retried_result,
    upcast_all,
    validate_expected,
    validate_limit,
    validate_snapshot,
)
from strangler_events.storage.sqlite import Lazy, immediate
from strangler_events.storage.sqlite import sqlite_path as parse_url
from strangler_events.upcast import Upcasters

TABLE: Final = "strangler_event_store"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    stream         TEXT NOT NULL,
    version        INTEGER NOT NULL,
    category       TEXT NOT NULL,
    stream_hash    INTEGER NOT NULL,
    type           TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    recorded_at    REAL NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS strangler_event_store_category ON {TABLE} (category, position);
CREATE TABLE IF NOT EXISTS strangler_event_snapshots (
    stream         TEXT PRIMARY KEY,
    version        INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          TEXT NOT NULL,
    recorded_at    REAL NOT NULL
);
"""

COLUMNS: Final = "position, id, stream, version, type, schema_version, data, metadata, recorded_at"
INSERT = (
    f"INSERT INTO {TABLE} (id, stream, version, category, stream_hash, type, schema_version,"
    " data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_OUTBOX = f"INSERT INTO {box.TABLE} ({', '.join(box.COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
FOUND = (
    f"SELECT id, stream, version, position FROM {TABLE}"
    " WHERE id IN (SELECT value FROM json_each(?))"
)
OUTBOX_TAKEN = f"SELECT id FROM {box.TABLE} WHERE id IN (SELECT value FROM json_each(?)) LIMIT 1"
VERSION = f"SELECT coalesce(max(version), 0) FROM {TABLE} WHERE stream = ?"
POSITIONS = f"SELECT position FROM {TABLE} WHERE stream = ? AND version > ? ORDER BY version"
PARTITION = "(? = 1 OR stream_hash % ? = ?)"
READ_ALL = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE position > ? AND {PARTITION} ORDER BY position LIMIT ?"
)
READ_CATEGORY = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE category = ? AND position > ? AND {PARTITION}"
    " ORDER BY position LIMIT ?"
)
READ_FORWARDS = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?"
)
READ_BACKWARDS = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE stream = ? AND version <= ? ORDER BY version DESC LIMIT ?"
)
SAVE_SNAPSHOT = """
INSERT INTO strangler_event_snapshots (stream, version, schema_version, state, recorded_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (stream) DO UPDATE SET version = excluded.version,
    schema_version = excluded.schema_version, state = excluded.state,
    recorded_at = excluded.recorded_at
WHERE strangler_event_snapshots.version <= excluded.version
"""
LOAD_SNAPSHOT = (
    "SELECT stream, version, schema_version, state, recorded_at"
    " FROM strangler_event_snapshots WHERE stream = ?"
)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Driver errors -> :class:`EventStoreError`, naming what failed."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if f"no such table: {box.TABLE}" in str(exc):
            raise EventStoreError(f"SQLite event store: {box.MISSING_HINT}") from exc
        if f"no such table: {TABLE}" in str(exc) or "no such table: strangler_event_" in str(exc):
            raise EventStoreError(f"SQLite event store: {exc}: call init() first") from exc
        raise EventStoreError(f"SQLite event store error: {exc}") from exc
    except (sqlite3.Error, OSError) as exc:
        raise EventStoreError(f"SQLite event store error: {exc}") from exc


class SqliteEventStore:
    """The :class:`~strangler_events.eventstore.port.EventStore` in one SQLite file.

        store = SqliteEventStore("sqlite:///./events.db")
        await store.init()
        await store.append("order-42", [NewEvent("OrderPlaced", {"total": 10})], NO_STREAM)

    ``before_commit`` (tests): awaited inside each append's transaction, after the
    insert and before the commit, with the stream and the :class:`AppendResult`.
    """

    def __init__(self, url: str, *, before_commit: BeforeCommit | None = None) -> None:
        self.url = url
        self.path = parse_url(url)
        self.before_commit = before_commit
        self._sqlite = Lazy(self.path, "NORMAL")

    async def init(self) -> None:
        async with translated(), self._sqlite.lock:
            db = await self._sqlite.get()
            await db.executescript(SCHEMA)

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected: Expected = ANY,
        outbox: OutboxSpec | None = None,
    ) -> AppendResult:
        prepared = prepare(stream, events)
        validate_expected(expected)
        aggregate = box.aggregate(stream, outbox) if outbox is not None else None
        async with translated(), self._sqlite.lock:
            db = await self._sqlite.get()
            async with immediate(db):
                result, inserted = await self._append(db, stream, prepared, expected, aggregate)
                if inserted and self.before_commit is not None:
                    await self.before_commit(stream, result)
        return result

    async def _append(
        self,
        db: aiosqlite.Connection,
        stream: str,
        events: list[NewEvent],
        expected: Expected,
        aggregate: tuple[str, str] | None,
    ) -> tuple[AppendResult, bool]:
        found = [Found(*r) for r in await _fetch(db, FOUND, json.dumps([e.id for e in events]))]
        actual: int = (await _fetch(db, VERSION, stream))[0][0]
        retried = retried_result(stream, expected, events, found, actual)
        if retried is not None:
            return retried, False
        check_expected(stream, expected, actual)
        now, category, hashed = time.time(), category_of(stream), stream_hash(stream)
        try:
            await db.executemany(
                INSERT,
                [
                    (e.id, stream, actual + i, category, hashed, e.type, e.schema_version)
                    + (dumps(e.data), dumps(e.metadata), now)
                    for i, e in enumerate(events, 1)
                ],
            )
        except sqlite3.IntegrityError as exc:  # the last line of defence
            if f"{TABLE}.version" in str(exc):
                raise WrongExpectedVersion(stream, expected, actual) from exc
            raise
        positions = [r[0] for r in await _fetch(db, POSITIONS, stream, actual)]
        if aggregate is not None:
            await _insert_outbox(db, stream, events, positions, actual, now, aggregate)
        return AppendResult(actual + 1, actual + len(events), positions[-1]), True

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        upcasters: Upcasters | None = None,
    ) -> list[RecordedEvent]:
        validate_stream(stream)
        validate_limit(limit)
        if backwards:
            sql, start = READ_BACKWARDS, (1 << 62) if from_version is None else from_version
        else:
            sql, start = READ_FORWARDS, 1 if from_version is None else from_version
        return await self._read(upcasters, sql, stream, start, -1 if limit is None else limit)

    async def read_category(
        self,
        category: str,
        after_position: int = 0,
        limit: int = DEFAULT_LIMIT,
        member: int = 0,
        size: int = 1,
        upcasters: Upcasters | None = None,
    ) -> list[RecordedEvent]:
        validate_category(category)
        validate_group(member, size)
        validate_limit(limit)
        return await self._read(
            upcasters, READ_CATEGORY, category, after_position, size, size, member, limit
        )

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = DEFAULT_LIMIT,
        member: int = 0,
        size: int = 1,
        upcasters: Upcasters | None = None,
    ) -> list[RecordedEvent]:
        validate_group(member, size)
        validate_limit(limit)
        return await self._read(upcasters, READ_ALL, after_position, size, size, member, limit)

    async def _read(self, upcasters: Upcasters | None, sql: str, *args: Any) -> list[RecordedEvent]:
        async with translated(), self._sqlite.lock:
            rows = await _fetch(await self._sqlite.get(), sql, *args)
        return upcast_all([decode_row(r) for r in rows], upcasters)

    async def stream_version(self, stream: str) -> int:
        validate_stream(stream)
        async with translated(), self._sqlite.lock:
            version: int = (await _fetch(await self._sqlite.get(), VERSION, stream))[0][0]
        return version

    async def save_snapshot(
        self, stream: str, version: int, schema_version: int, state: dict[str, Any]
    ) -> None:
        validate_snapshot(stream, version, schema_version, state)
        async with translated(), self._sqlite.lock:
            db = await self._sqlite.get()
            await db.execute(
                SAVE_SNAPSHOT, (stream, version, schema_version, dumps(state), time.time())
            )

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        async with translated(), self._sqlite.lock:
            rows = await _fetch(await self._sqlite.get(), LOAD_SNAPSHOT, stream)
        if not rows:
            return None
        r = rows[0]
        return Snapshot(r[0], r[1], r[2], json.loads(r[3]), r[4])

    async def close(self) -> None:
        await self._sqlite.close()


async def _fetch(db: aiosqlite.Connection, sql: str, *args: Any) -> list[Any]:
    async with db.execute(sql, args) as cursor:
        return list(await cursor.fetchall())


async def _insert_outbox(
    db: aiosqlite.Connection,
    stream: str,
    events: list[NewEvent],
    positions: list[int],
    actual: int,
    now: float,
    aggregate: tuple[str, str],
) -> None:
    # Checked first: a failed row of executemany leaves the rows before it in place.
    taken = await _fetch(db, OUTBOX_TAKEN, json.dumps([e.id for e in events]))
    if taken:
        raise DuplicateEventId(stream, taken[0][0], f"in {box.TABLE}")
    rows = [
        (e.id, *aggregate, e.type, dumps(e.data), now)
        + (dumps(box.headers(e.metadata, e.schema_version, stream, actual + i, p)),)
        for i, (e, p) in enumerate(zip(events, positions, strict=True), 1)
    ]
    await db.executemany(INSERT_OUTBOX, rows)
