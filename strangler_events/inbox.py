"""The idempotent inbox: an event's id is recorded in the same transaction as the
handler's own writes, so an event delivered again has no second effect.

With the stored position (the next offset per topic partition) in that same
transaction, a consumer that restarts resumes exactly after the last event whose
effect was committed.

:meth:`Inbox.process_batch` does the same for several events in one transaction: their
ids are recorded in one statement, the handlers of the new ones run in order, and the
position after the last is stored once; any handler's failure rolls all of it back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS strangler_inbox (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS strangler_positions (
    consumer    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
"""

Handler = Callable[[Event, Tx], Awaitable[None]]
Position = tuple[str, int, int]  # topic, partition, next offset
CLAIM_CHUNK = 300  # ids per INSERT in a batch (3 parameters each)


class Inbox:
    def __init__(self, database: Database, consumer: str) -> None:
        self.database = database
        self.consumer = consumer

    async def init(self) -> None:
        await self.database.script(SCHEMA)

    async def process(
        self, event: Event, handler: Handler, position: Position | None = None
    ) -> bool:
        """Run ``handler`` unless this consumer already processed ``event``; record the id
        (and the position) in the handler's transaction.  True when the handler ran."""
        async with self.database.transaction() as tx:
            fresh = await tx.execute(
                "INSERT INTO strangler_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                self.consumer,
                event.id,
                time.time(),
            )
            if fresh:
                await handler(event, tx)
            if position is not None:
                await self._store(tx, position)
            return bool(fresh)

    async def process_batch(
        self, items: Sequence[tuple[Event, Handler | None]], position: Position
    ) -> list[bool]:
        """Like :meth:`process` for each ``(event, handler)`` in order, all in one
        transaction, with ``position`` stored once at the end; a ``None`` handler is an
        event passed over (not recorded).  One flag per item: True when its handler ran
        (False: already processed, by an earlier transaction or earlier in ``items``).
        A handler that raises rolls the whole batch back and the exception propagates."""
        async with self.database.transaction() as tx:
            fresh = await self._claim(tx, [e.id for e, h in items if h is not None])
            ran = []
            for event, handler in items:
                new = handler is not None and event.id in fresh
                if handler is not None and new:
                    fresh.discard(event.id)  # the same id twice in a batch runs once
                    await handler(event, tx)
                ran.append(new)
            await self._store(tx, position)
        return ran

    async def _claim(self, tx: Tx, ids: Sequence[str]) -> set[str]:
        """Record ``ids`` as processed in one statement; the ones not recorded before."""
        unique, now, fresh = list(dict.fromkeys(ids)), time.time(), set[str]()
        for at in range(0, len(unique), CLAIM_CHUNK):  # under SQLite's limit of parameters
            chunk = unique[at : at + CLAIM_CHUNK]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            args = [a for ident in chunk for a in (self.consumer, ident, now)]
            rows = await tx.fetch(
                "INSERT INTO strangler_inbox (consumer, event_id, processed_at) VALUES "
                f"{values} ON CONFLICT DO NOTHING RETURNING event_id",
                *args,
            )
            fresh.update(str(r[0]) for r in rows)
        return fresh

    async def skip(self, position: Position) -> None:
        """Move the stored position past an event that was dead-lettered or skipped."""
        async with self.database.transaction() as tx:
            await self._store(tx, position)

    async def _store(self, tx: Tx, position: Position) -> None:
        topic, partition, offset = position
        await tx.execute(
            "INSERT INTO strangler_positions (consumer, topic, partition, next_offset)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (consumer, topic, partition)"
            " DO UPDATE SET next_offset = excluded.next_offset",
            self.consumer,
            topic,
            partition,
            offset,
        )

    async def positions(self) -> dict[tuple[str, int], int]:
        async with self.database.transaction() as tx:
            rows = await tx.fetch(
                "SELECT topic, partition, next_offset FROM strangler_positions WHERE consumer = ?",
                self.consumer,
            )
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    async def forget(self, tx: Tx | None = None) -> None:
        """Drop this consumer's processed ids and positions (before a rebuild); in ``tx``
        when given, so that they go together with the read model they describe."""
        if tx is None:
            async with self.database.transaction() as own:
                await self.forget(own)
            return
        await tx.execute("DELETE FROM strangler_inbox WHERE consumer = ?", self.consumer)
        await tx.execute("DELETE FROM strangler_positions WHERE consumer = ?", self.consumer)
