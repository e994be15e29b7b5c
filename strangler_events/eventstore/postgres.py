"""The PostgreSQL event store (asyncpg; the pool comes from
:mod:`strangler_events.storage.postgres`).

**Appends** are one statement (its own transaction): read the stream's version, check
it against the expectation, insert the events -- and, when publishing, the outbox rows
-- in one ``WITH ... INSERT``.  The expectation is checked inside the database, as
Message DB's ``write_message`` does; two writers that both pass the check race on the
unique ``(stream, version)`` constraint, and the loser gets
:class:`WrongExpectedVersion` (an ``ANY``/``STREAM_EXISTS`` append re-decides
instead).  A retried append (same ids) is recognised from the stored ids.

**Gap-free reading, and why positions are transaction ids.**  A sequence hands out
positions in insert order, but transactions commit in any order: a reader at position
12 can miss 11 when 11's transaction commits after 12's (the bug behind "skipped
events" in every PostgreSQL store that reads ``position > last``).  eventsourcing's
``_lock_table`` and Message DB's per-category advisory lock fix it by serialising
writers until commit, which also serialises the commit flush.  Here nothing is
serialised; instead:

1. an event's position is ``pg_current_xact_id() << 16 | ordinal`` -- its writing
   transaction's id, then its index in the append (at most 65,536 events per append);
2. readers read only positions below ``pg_snapshot_xmin(pg_current_snapshot()) << 16``.

Proof: the snapshot's ``xmin`` is the oldest transaction still running when the
reader's statement took its snapshot; every transaction id below it has finished, so
its rows are visible to that very statement (committed) or never will be (aborted).
Every transaction that can still commit rows -- running now, or not yet holding an id
-- has an id >= ``xmin``, hence positions >= ``xmin << 16``, above everything the
reader returned.  So once a reader has passed a position, nothing can appear below it.
The usual ``xid < xmin`` filter *without* xid-ordered positions is not enough: a
transaction can take its id before another but its sequence number after it.  Within a
stream, positions follow versions: version n+1's statement saw n committed, so its
writer took its id after n's writer did (no write precedes the check).

The cost: a transaction that stays open anywhere in the cluster holds every subscriber
back (never loses events), and positions are sparse (increasing, not dense; the 64-bit
transaction id, epoch included, fits a bigint position for 2**47 transactions --
centuries at 10,000 per second).  Stream
reads are not held back: they read what is committed.  Partitioning (member/size) uses
the CRC-32 stored with each row (:func:`~strangler_events.eventstore.port.partition_of`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg

from strangler_events.eventstore import outbox as box
from strangler_events.eventstore.port import (
    ANY,
    DEFAULT_LIMIT,
    STREAM_EXISTS,
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
    ORDINAL_BITS,
    BeforeCommit,
    Found,
    decode_row,
    dumps,
    exact_version,
    prepare,
    retried_result,
    upcast_all,
    validate_expected,
    validate_limit,
    validate_snapshot,
)
from strangler_events.storage.postgres import MAX_SIZE, UNREACHABLE, LazyPool
from strangler_events.upcast import Upcasters

TABLE: Final = "strangler_event_store"
VERSION_CONSTRAINT: Final = "strangler_event_store_stream_version"
LOCK_KEY: Final = 0x4556_5354  # advisory lock that serialises concurrent init()s
RACE_RETRIES: Final = 20  # ANY/STREAM_EXISTS appends that keep losing the version race

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    position       BIGINT PRIMARY KEY,
    id             UUID NOT NULL UNIQUE,
    stream         TEXT NOT NULL,
    version        BIGINT NOT NULL,
    category       TEXT NOT NULL,
    stream_hash    BIGINT NOT NULL,
    type           TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    data           JSONB NOT NULL,
    metadata       JSONB NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT {VERSION_CONSTRAINT} UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS strangler_event_store_category ON {TABLE} (category, position);
CREATE TABLE IF NOT EXISTS strangler_event_snapshots (
    stream         TEXT PRIMARY KEY,
    version        BIGINT NOT NULL,
    schema_version INTEGER NOT NULL,
    state          JSONB NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

# Rows below the watermark only: see the module docstring.
WATERMARK: Final = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {ORDINAL_BITS})"
COLUMNS: Final = (
    "position, id::text, stream, version, type, schema_version, data::text, metadata::text,"
    " extract(epoch FROM recorded_at)::float8"
)

# The expectation, checked against the version the same statement read.
CHECK: Final = (
    "CASE WHEN $9::bigint IS NOT NULL THEN cur.v = $9::bigint"
    " WHEN $10::bool THEN cur.v > 0 ELSE true END"
)
APPEND = f"""
WITH cur AS (
    SELECT coalesce(max(version), 0) AS v FROM {TABLE} WHERE stream = $1
), ins AS (
    INSERT INTO {TABLE} (position, id, stream, version, category, stream_hash, type,
                         schema_version, data, metadata)
    SELECT (pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) + e.n - 1, e.id, $1,
           cur.v + e.n, $2, $3, e.type, e.sv, e.data::jsonb, e.meta::jsonb
    FROM cur, unnest($4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[])
              WITH ORDINALITY AS e(id, type, sv, data, meta, n)
    WHERE {CHECK}
    RETURNING {{returning}}
){{outbox}}
SELECT (SELECT v FROM cur), min(version), max(version), max(position) FROM ins
"""
OUTBOX_CTE = f""", box AS (
    INSERT INTO {box.TABLE} ({", ".join(box.COLUMNS)})
    SELECT id, $11, $12, type, data, recorded_at,
           metadata || jsonb_build_object('schema_version', schema_version, 'stream', $1::text,
                                          'stream_version', version, 'position', position)
    FROM ins
)"""
APPEND_MANY = APPEND.format(returning="version, position", outbox="")
APPEND_OUTBOX = APPEND.format(
    returning="id, type, schema_version, data, metadata, version, position, recorded_at",
    outbox=OUTBOX_CTE,
)
# The common case -- one event, no outbox -- with scalar parameters: no arrays to
# encode and unnest (the single-append benchmark's hot path).
APPEND_ONE = f"""
WITH cur AS (
    SELECT coalesce(max(version), 0) AS v FROM {TABLE} WHERE stream = $1
), ins AS (
    INSERT INTO {TABLE} (position, id, stream, version, category, stream_hash, type,
                         schema_version, data, metadata)
    SELECT pg_current_xact_id()::text::bigint << {ORDINAL_BITS}, $4::uuid, $1, cur.v + 1, $2,
           $3, $5, $6, $7::jsonb, $8::jsonb
    FROM cur
    WHERE {CHECK}
    RETURNING version, position
)
SELECT cur.v, ins.version, ins.version, ins.position FROM cur LEFT JOIN ins ON true
"""

PARTITION = "($3::bigint = 1 OR stream_hash % $3::bigint = $4::bigint)"
READ_ALL = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE position > $1 AND position < {WATERMARK}"
    f" AND {PARTITION} ORDER BY position LIMIT $2"
)
READ_CATEGORY = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE category = $5 AND position > $1"
    f" AND position < {WATERMARK} AND {PARTITION} ORDER BY position LIMIT $2"
)
READ_FORWARDS = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
)
READ_BACKWARDS = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE stream = $1 AND version <= $2"
    " ORDER BY version DESC LIMIT $3"
)
FOUND = f"SELECT id::text, stream, version, position FROM {TABLE} WHERE id = ANY($1::uuid[])"
OUTBOX_TAKEN = f"SELECT id::text FROM {box.TABLE} WHERE id = ANY($1::uuid[]) LIMIT 1"
VERSION = f"SELECT coalesce(max(version), 0) FROM {TABLE} WHERE stream = $1"
SAVE_SNAPSHOT = """
INSERT INTO strangler_event_snapshots (stream, version, schema_version, state)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (stream) DO UPDATE SET version = excluded.version,
    schema_version = excluded.schema_version, state = excluded.state, recorded_at = now()
WHERE strangler_event_snapshots.version <= excluded.version
"""
LOAD_SNAPSHOT = """
SELECT stream, version, schema_version, state::text, extract(epoch FROM recorded_at)::float8
FROM strangler_event_snapshots WHERE stream = $1
"""


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Driver errors -> :class:`EventStoreError`, naming what failed."""
    try:
        yield
    except asyncpg.UndefinedTableError as exc:
        hint = box.MISSING_HINT if box.TABLE in str(exc) else "call init() first"
        raise EventStoreError(f"PostgreSQL event store: {exc}: {hint}") from exc
    except UNREACHABLE as exc:
        raise EventStoreError(f"PostgreSQL event store unreachable: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise EventStoreError(f"PostgreSQL event store error: {exc}") from exc


class PostgresEventStore:
    """The :class:`~strangler_events.eventstore.port.EventStore` on PostgreSQL.

        store = PostgresEventStore("postgresql://app@db/orders")
        await store.init()
        await store.append("order-42", [NewEvent("OrderPlaced", {"total": 10})], NO_STREAM)

    ``before_commit`` (tests): awaited inside each append's transaction, after the
    insert and before the commit, with the stream and the :class:`AppendResult` -- to
    hold a transaction open while others commit.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = MAX_SIZE,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.before_commit = before_commit
        self._pool = LazyPool(url, max_size=pool_size)

    async def _get_pool(self) -> asyncpg.Pool:
        return await self._pool.get()

    async def init(self) -> None:
        async with translated():
            pool = await self._get_pool()
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
                await conn.execute(SCHEMA)

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected: Expected = ANY,
        outbox: OutboxSpec | None = None,
    ) -> AppendResult:
        prepared = prepare(stream, events)
        validate_expected(expected)
        sql, args = _append_args(stream, prepared, expected, outbox)
        for _ in range(RACE_RETRIES):
            async with translated():
                outcome = await self._insert(stream, sql, args)
                if isinstance(outcome, asyncpg.UniqueViolationError):
                    result = await self._after_conflict(stream, prepared, expected, outcome)
                    if result is None:
                        continue  # ANY / STREAM_EXISTS lost a race: decide again
                    return result
                actual, first, last, position = outcome
                if first is not None:
                    return AppendResult(first, last, position)
                found = await self._found(prepared)
            retried = retried_result(stream, expected, prepared, found, actual)
            if retried is not None:
                return retried
            raise WrongExpectedVersion(stream, expected, actual)
        raise EventStoreError(
            f"stream {stream!r}: lost the race for the next version {RACE_RETRIES} times"
        )

    async def _insert(
        self, stream: str, sql: str, args: Sequence[Any]
    ) -> asyncpg.Record | asyncpg.UniqueViolationError:
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn:
                if self.before_commit is None:
                    return await conn.fetchrow(sql, *args)
                async with conn.transaction():
                    row = await conn.fetchrow(sql, *args)
                    if row[1] is not None:
                        await self.before_commit(stream, AppendResult(row[1], row[2], row[3]))
                    return row
        except asyncpg.UniqueViolationError as exc:
            return exc

    async def _after_conflict(
        self,
        stream: str,
        prepared: list[NewEvent],
        expected: Expected,
        exc: asyncpg.UniqueViolationError,
    ) -> AppendResult | None:
        actual = await self.stream_version(stream)
        result = retried_result(stream, expected, prepared, await self._found(prepared), actual)
        if result is not None:
            return result
        if exc.constraint_name == VERSION_CONSTRAINT:
            if exact_version(expected) is not None:
                raise WrongExpectedVersion(stream, expected, actual) from None
            return None
        if exc.table_name == box.TABLE:  # an id the outbox already has
            pool = await self._get_pool()
            taken = await pool.fetchval(OUTBOX_TAKEN, [e.id for e in prepared])
            raise DuplicateEventId(stream, taken or prepared[0].id, f"in {box.TABLE}") from exc
        raise EventStoreError(f"stream {stream!r}: {exc}") from exc

    async def _found(self, prepared: list[NewEvent]) -> list[Found]:
        pool = await self._get_pool()
        rows = await pool.fetch(FOUND, [e.id for e in prepared])
        return [Found(r[0], r[1], r[2], r[3]) for r in rows]

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
        return await self._read(upcasters, sql, stream, start, limit)

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
            upcasters, READ_CATEGORY, after_position, limit, size, member, category
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
        return await self._read(upcasters, READ_ALL, after_position, limit, size, member)

    async def _read(self, upcasters: Upcasters | None, sql: str, *args: Any) -> list[RecordedEvent]:
        async with translated():
            pool = await self._get_pool()
            rows = await pool.fetch(sql, *args)
        return upcast_all([decode_row(r) for r in rows], upcasters)

    async def stream_version(self, stream: str) -> int:
        validate_stream(stream)
        async with translated():
            pool = await self._get_pool()
            version: int = await pool.fetchval(VERSION, stream)
        return version

    async def save_snapshot(
        self, stream: str, version: int, schema_version: int, state: dict[str, Any]
    ) -> None:
        validate_snapshot(stream, version, schema_version, state)
        async with translated():
            pool = await self._get_pool()
            await pool.execute(SAVE_SNAPSHOT, stream, version, schema_version, dumps(state))

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        async with translated():
            pool = await self._get_pool()
            row = await pool.fetchrow(LOAD_SNAPSHOT, stream)
        if row is None:
            return None
        return Snapshot(row[0], row[1], row[2], _loads(row[3]), row[4])

    async def close(self) -> None:
        await self._pool.close()


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def _append_args(
    stream: str, events: list[NewEvent], expected: Expected, outbox: OutboxSpec | None
) -> tuple[str, list[Any]]:
    """The append statement for this shape of append, and its parameters."""
    head: list[Any] = [stream, category_of(stream), stream_hash(stream)]
    check = [exact_version(expected), expected is STREAM_EXISTS]
    if len(events) == 1 and outbox is None:
        (e,) = events
        return APPEND_ONE, [
            *head,
            e.id,
            e.type,
            e.schema_version,
            dumps(e.data),
            dumps(e.metadata),
            *check,
        ]
    columns = [
        [e.id for e in events],
        [e.type for e in events],
        [e.schema_version for e in events],
        [dumps(e.data) for e in events],
        [dumps(e.metadata) for e in events],
    ]
    if outbox is None:
        return APPEND_MANY, [*head, *columns, *check]
    return APPEND_OUTBOX, [*head, *columns, *check, *box.aggregate(stream, outbox)]
