"""The PostgreSQL outbox (asyncpg; pools and connections are opened by
:mod:`strangler_events.storage.postgres`).

Leadership is a session advisory lock held on a dedicated connection: if the
relay process dies, PostgreSQL ends its session and the lock is free for a
standby at once.  New rows raise a NOTIFY (a statement-level trigger, so it
also fires for rows written by capture triggers in the monolith's
transactions); the relay LISTENs and still polls as a fallback.  The leader's
heartbeat is one row stamped with the server's clock, so its age does not depend on the
reader's clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.capture.kafka_sink import envelope_from_text
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
from strangler_events.storage.postgres import UNREACHABLE, LazyPool, connect

CHANNEL = "strangler_outbox"
LOCK_KEY = 0x5752_4C59  # advisory lock id of the active relay

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS strangler_outbox (
    seq           BIGSERIAL PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    aggregatetype TEXT NOT NULL,
    aggregateid   TEXT NOT NULL,
    type          TEXT NOT NULL,
    payload       JSONB,
    occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    headers       JSONB NOT NULL DEFAULT '{{}}',
    published_at  TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    failed        BOOLEAN NOT NULL DEFAULT false,
    skipped       BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS strangler_outbox_pending
    ON strangler_outbox (seq) WHERE published_at IS NULL AND NOT skipped;
CREATE INDEX IF NOT EXISTS strangler_outbox_published
    ON strangler_outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS strangler_outbox_blocked
    ON strangler_outbox (aggregatetype, aggregateid)
    WHERE failed AND NOT skipped AND published_at IS NULL;
CREATE TABLE IF NOT EXISTS strangler_outbox_doubts (
    n           BIGSERIAL PRIMARY KEY,
    capture_id  TEXT,
    request_id  TEXT NOT NULL,
    route       TEXT,
    method      TEXT,
    path        TEXT,
    status      INTEGER,
    reason      TEXT NOT NULL,
    event_type  TEXT,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The first schema keyed doubts on the client's request id (two writes sent with one id
-- kept one doubt); the key is the gateway's capture id.
ALTER TABLE strangler_outbox_doubts ADD COLUMN IF NOT EXISTS capture_id TEXT;
UPDATE strangler_outbox_doubts SET capture_id = request_id WHERE capture_id IS NULL;
DROP INDEX IF EXISTS strangler_outbox_doubts_request;
CREATE UNIQUE INDEX IF NOT EXISTS strangler_outbox_doubts_capture
    ON strangler_outbox_doubts (capture_id);
CREATE TABLE IF NOT EXISTS strangler_relay_heartbeat (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    beat    JSONB NOT NULL,
    beat_at TIMESTAMPTZ NOT NULL
);
CREATE OR REPLACE FUNCTION strangler_outbox_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS strangler_outbox_notify ON strangler_outbox;
CREATE TRIGGER strangler_outbox_notify AFTER INSERT ON strangler_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION strangler_outbox_notify();
"""

# Rows of an aggregate that has a failed (parked) row wait behind it.  Payload and
# headers come back as JSON text and go into the record value without being parsed.
PENDING = """
SELECT o.seq, o.id::text, o.aggregatetype, o.aggregateid, o.type,
       extract(epoch FROM o.occurred_at)::float8, o.attempts,
       coalesce((o.headers ->> 'schema_version')::int, 1), o.headers ->> 'traceparent',
       o.payload::text, o.headers::text
FROM strangler_outbox o
WHERE o.published_at IS NULL AND NOT o.skipped AND NOT o.failed AND o.seq > $2
  AND NOT EXISTS (
    SELECT 1 FROM strangler_outbox f
    WHERE f.failed AND NOT f.skipped AND f.published_at IS NULL
      AND f.aggregatetype = o.aggregatetype AND f.aggregateid = o.aggregateid)
ORDER BY o.seq
LIMIT $1
"""
# Rows PENDING would return up to a seq: more than the relay holds unmarked means one
# committed late (its transaction took its seq, then rows after it committed first).
LATE = """
SELECT count(*) FROM strangler_outbox o
WHERE o.published_at IS NULL AND NOT o.skipped AND NOT o.failed AND o.seq <= $1
  AND NOT EXISTS (
    SELECT 1 FROM strangler_outbox f
    WHERE f.failed AND NOT f.skipped AND f.published_at IS NULL
      AND f.aggregatetype = o.aggregatetype AND f.aggregateid = o.aggregateid)
"""
# PENDING must walk the pending index in seq order and stop after LIMIT rows.  Without
# fresh statistics (a new table, or a backlog that grew after the last ANALYZE) the
# planner expects a handful of rows and instead collects every pending row, JSON text
# and all, then sorts them: 10x slower on a 100k-row backlog, and worse as it grows.
IN_SEQ_ORDER = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Driver errors -> OutboxUnavailable / OutboxError, where they enter."""
    try:
        yield
    except UNREACHABLE as exc:
        raise OutboxUnavailable(f"PostgreSQL outbox unreachable: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise OutboxError(f"PostgreSQL outbox error: {exc}") from exc


def _event_args(e: Event) -> tuple[Any, ...]:
    return (
        e.id,
        e.aggregatetype,
        e.aggregateid,
        e.type,
        json.dumps(e.payload),
        datetime.fromtimestamp(e.occurred_at, UTC),
        json.dumps(e.headers),
    )


class PostgresOutbox:
    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._pool = LazyPool(url, connect_timeout=connect_timeout, command_timeout=30)
        self._leader: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._wakeup = asyncio.Event()

    async def _get_pool(self) -> asyncpg.Pool:
        async with translated():
            return await self._pool.get()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._get_pool()
        async with translated():
            records: list[asyncpg.Record] = await pool.fetch(sql, *args)
            return records

    async def execute(self, sql: str, *args: Any) -> str:
        pool = await self._get_pool()
        async with translated():
            result: str = await pool.execute(sql, *args)
            return result

    async def init(self) -> None:
        pool = await self._get_pool()
        async with translated(), pool.acquire() as conn:
            # Serialise concurrent `outbox init`s: CREATE ... IF NOT EXISTS races otherwise.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY + 1)
                await conn.execute(SCHEMA)

    async def append(self, events: Sequence[Event], doubts: Sequence[Doubt] = ()) -> None:
        pool = await self._get_pool()
        async with translated(), pool.acquire() as conn, conn.transaction():
            # An acknowledged event must survive a restart even on a server set to
            # asynchronous commit (seen losing acknowledged rows on shutdown otherwise).
            await conn.execute("SET LOCAL synchronous_commit TO on")
            if events:
                await conn.executemany(
                    "INSERT INTO strangler_outbox (id, aggregatetype, aggregateid, type, payload,"
                    " occurred_at, headers) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb)"
                    " ON CONFLICT (id) DO NOTHING",
                    [_event_args(e) for e in events],
                )
            if doubts:
                await conn.executemany(
                    "INSERT INTO strangler_outbox_doubts (capture_id, request_id, route, method,"
                    " path, status, reason, event_type, occurred_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT (capture_id) DO NOTHING",
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
                            datetime.fromtimestamp(d.occurred_at, UTC),
                        )
                        for d in doubts
                    ],
                )

    async def pending(self, limit: int, after: int = 0) -> list[Row]:
        pool = await self._get_pool()
        async with translated(), pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(IN_SEQ_ORDER)
            records = await conn.fetch(PENDING, limit, after)
        rows = []
        for r in records:
            headers: dict[str, Any] = {"schema_version": r[7]}
            if r[8]:
                headers["traceparent"] = r[8]
            event = Event(r[1], r[2], r[3], r[4], None, r[5], headers)
            event.encoded = envelope_from_text(event, r[9], r[10])
            rows.append(Row(r[0], event, r[6]))
        return rows

    async def late(self, upto: int, unmarked: int) -> bool:
        pool = await self._get_pool()
        async with translated(), pool.acquire() as conn:
            found = await conn.fetchval(LATE, upto)
        return int(found) > unmarked

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self.execute(
                "UPDATE strangler_outbox SET published_at = now() WHERE seq = ANY($1::bigint[])",
                list(seqs),
            )

    async def mark_failed(self, seq: int, error: str) -> None:
        await self.execute(
            "UPDATE strangler_outbox SET failed = true, attempts = attempts + 1, last_error = $2"
            " WHERE seq = $1",
            seq,
            error,
        )

    async def skip(self, event_id: str) -> bool:
        result = await self.execute(
            "UPDATE strangler_outbox SET skipped = true"
            " WHERE id::text = $1 AND published_at IS NULL",
            event_id,
        )
        return result != "UPDATE 0"

    async def blocked(self) -> list[Blocked]:
        records = await self.fetch(
            "SELECT seq, id::text, aggregatetype, aggregateid, coalesce(last_error, '')"
            " FROM strangler_outbox WHERE failed AND NOT skipped AND published_at IS NULL"
            " ORDER BY seq"
        )
        return [Blocked(*r) for r in records]

    async def status(self) -> Status:
        r = (
            await self.fetch(
                "SELECT"
                " count(*) FILTER (WHERE published_at IS NULL AND NOT skipped),"
                " extract(epoch FROM now() - min(occurred_at)"
                "   FILTER (WHERE published_at IS NULL AND NOT skipped)),"
                " count(*) FILTER (WHERE published_at IS NOT NULL),"
                " (SELECT count(*) FROM strangler_outbox_doubts),"
                " count(*) FILTER (WHERE failed AND NOT skipped AND published_at IS NULL)"
                " FROM strangler_outbox"
            )
        )[0]
        age = float(r[1]) if r[1] is not None else None
        return Status(int(r[0]), age, int(r[2]), int(r[3]), int(r[4]))

    async def doubts(self, limit: int = 1000) -> list[Doubt]:
        records = await self.fetch(
            "SELECT request_id, route, method, path, status, reason, event_type,"
            " extract(epoch FROM occurred_at), capture_id FROM strangler_outbox_doubts"
            " ORDER BY n LIMIT $1",
            limit,
        )
        return [
            Doubt(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7]), r[8] or "")
            for r in records
        ]

    async def purge(self, older_than: float) -> int:
        result = await self.execute(
            "DELETE FROM strangler_outbox WHERE published_at < now() - make_interval(secs => $1)",
            older_than,
        )
        return int(result.split()[-1])

    async def lead(self, holder: str, ttl: float) -> bool:
        if self._leader is not None and not self._leader.is_closed():
            try:
                async with translated():
                    await self._leader.fetchval("SELECT 1", timeout=ttl)
                return True
            except OutboxError:
                self._leader = None
                return False
        async with translated():
            conn = await connect(self.url, connect_timeout=self.connect_timeout)
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        if got:
            self._leader = conn
            return True
        await conn.close()
        return False

    async def resign(self, holder: str) -> None:
        if self._leader is not None:
            await self._leader.close()
            self._leader = None
        await self.execute("DELETE FROM strangler_relay_heartbeat WHERE holder = $1", holder)

    async def heartbeat(self, beat: Heartbeat) -> None:
        await self.execute(
            "INSERT INTO strangler_relay_heartbeat (name, holder, beat, beat_at)"
            " VALUES ('relay', $1, $2::jsonb, clock_timestamp()) ON CONFLICT (name) DO UPDATE"
            " SET holder = excluded.holder, beat = excluded.beat, beat_at = excluded.beat_at",
            beat.holder,
            json.dumps(beat.to_json()),
        )

    async def relay_state(self) -> RelayState | None:
        records = await self.fetch(
            "SELECT beat::text, greatest(extract(epoch FROM clock_timestamp() - beat_at), 0)"
            " FROM strangler_relay_heartbeat WHERE name = 'relay'"
        )
        if not records:
            return None
        return RelayState(Heartbeat.from_json(json.loads(records[0][0])), float(records[0][1]))

    async def wait_for_rows(self, timeout: float) -> None:
        if self._listener is None or self._listener.is_closed():
            try:
                async with translated():
                    self._listener = await connect(self.url, connect_timeout=self.connect_timeout)
                    await self._listener.add_listener(CHANNEL, self._notified)
            except OutboxError:
                self._listener = None
                await asyncio.sleep(timeout)
                return
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass
        self._wakeup.clear()

    def _notified(self, *args: object) -> None:
        self._wakeup.set()

    async def close(self) -> None:
        for conn in (self._leader, self._listener):
            if conn is not None and not conn.is_closed():
                await conn.close()
        self._leader = self._listener = None
        await self._pool.close()
