"""Saga instances, durable and versioned, in their own table beside the outbox.

Why a table of its own rather than the event store: a transition must store the new
state *and* send commands to other services' topics in one transaction.  The event
store's outbox publishes the appended events themselves, to one topic per append; a
saga needs its private state plus commands to a different topic per participant, and
queries the event store does not have (instances by state for ``strangler saga list``,
by deadline for durable timeouts).  So: one row per instance (state, deadline and
version as columns, the rest as JSON) on the toolkit's :class:`Database` seam (SQLite
or PostgreSQL, the same SQL), and the commands as rows of the gateway's outbox table in
the same transaction (:mod:`strangler_events.saga.outbox`), which the existing relay
publishes.  A crash before the commit leaves neither; after it, both.

Optimistic concurrency: a transition reads the row, decides, and writes the next version
only where the row still has the version it read (``UPDATE ... WHERE version = ?``; a
new instance is an ``INSERT`` that must not find one).  When another transaction won,
:meth:`SagaStore.apply` reads again and decides again, in the same transaction (each
statement of a PostgreSQL READ COMMITTED transaction sees what is committed), up to
``CONFLICT_RETRIES`` times: one wins, the other is retried, no update is lost.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from strangler_events.database.port import Database, Tx
from strangler_events.saga import outbox
from strangler_events.saga.instance import Decision, Instance

TABLE: Final = "strangler_saga_instances"
CONFLICT_RETRIES: Final = 20

SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    saga       TEXT NOT NULL,
    id         TEXT NOT NULL,
    state      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    deadline   DOUBLE PRECISION,
    started_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (saga, id)
);
CREATE INDEX IF NOT EXISTS strangler_saga_deadline ON {TABLE} (deadline)
    WHERE deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS strangler_saga_state ON {TABLE} (saga, state, started_at);
"""
LOAD: Final = f"SELECT version, body FROM {TABLE} WHERE saga = ? AND id = ?"
INSERT: Final = (
    f"INSERT INTO {TABLE} (saga, id, state, version, deadline, started_at, updated_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (saga, id) DO NOTHING"
)
UPDATE: Final = (
    f"UPDATE {TABLE} SET state = ?, version = ?, deadline = ?, updated_at = ?, body = ?"
    " WHERE saga = ? AND id = ? AND version = ?"
)
DUE: Final = (
    f"SELECT id FROM {TABLE} WHERE saga = ? AND deadline IS NOT NULL AND deadline <= ?"
    " ORDER BY deadline LIMIT ?"
)
COUNTS: Final = f"SELECT saga, state, count(*) FROM {TABLE} GROUP BY saga, state"

Decide = Callable[[Instance | None], Decision]
Hook = Callable[[Decision], Awaitable[None]]


class ConcurrencyError(RuntimeError):
    """A transition kept losing the race for an instance."""


class SagaStore:
    """Instances of every saga in one database (the one the outbox is in).

    ``before_commit`` (tests): awaited inside each transition's transaction after the
    state and the messages are written, before the commit."""

    def __init__(self, database: Database, *, before_commit: Hook | None = None) -> None:
        self.database = database
        self.dialect = outbox.dialect(database.url)
        self.before_commit = before_commit
        self.conflicts = 0  # transitions decided again after another one won

    async def init(self) -> None:
        """Create the instance table if missing (the outbox table is the gateway's)."""
        await self.database.script(SCHEMA)

    async def load(self, tx: Tx, saga: str, ident: str) -> Instance | None:
        rows = await tx.fetch(LOAD, saga, ident)
        if not rows:
            return None
        version, body = rows[0]
        return Instance.from_json(str(body), int(version))

    async def save(self, tx: Tx, inst: Instance) -> bool:
        """Write ``inst`` as the version after ``inst.version``; False when the stored
        row is not at ``inst.version`` any more (or exists already, for version 0)."""
        body = inst.to_json()
        if inst.version == 0:
            args = (inst.saga, inst.id, inst.state, 1, inst.deadline, inst.started_at)
            return await tx.execute(INSERT, *args, inst.updated_at, body) == 1
        return (
            await tx.execute(
                UPDATE,
                inst.state,
                inst.version + 1,
                inst.deadline,
                inst.updated_at,
                body,
                inst.saga,
                inst.id,
                inst.version,
            )
            == 1
        )

    async def apply(
        self, saga: str, ident: str, decide: Decide, tx: Tx | None = None, *, new: bool = False
    ) -> Decision:
        """Read the instance, ``decide``, store the new state with the decision's messages
        (in ``tx`` when given, else in a transaction of its own); on a version conflict
        read and decide again.  ``new``: the instance most likely does not exist yet (a
        start event): decide on none without reading first; the ``INSERT`` that must not
        find a row checks it, and an instance found there is read and decided on again."""
        if tx is None:
            async with self.database.transaction() as own:
                return await self.apply(saga, ident, decide, own, new=new)
        for attempt in range(CONFLICT_RETRIES):
            guess = new and attempt == 0
            decision = decide(None if guess else await self.load(tx, saga, ident))
            if decision.instance is None:
                return decision
            if await self.save(tx, decision.instance):
                await outbox.write(tx, self.dialect, decision.messages)
                if self.before_commit is not None:
                    await self.before_commit(decision)
                return decision
            self.conflicts += not guess  # a guessed-wrong start is no race lost
        raise ConcurrencyError(
            f"saga {saga!r} instance {ident!r}: lost the race {CONFLICT_RETRIES} times"
        )

    async def due(self, saga: str, now: float | None = None, limit: int = 200) -> list[str]:
        """Instances whose deadline passed, earliest first."""
        at = time.time() if now is None else now
        async with self.database.transaction() as tx:
            rows = await tx.fetch(DUE, saga, at, limit)
        return [str(r[0]) for r in rows]

    async def get(self, ident: str, saga: str | None = None) -> list[Instance]:
        """The instances with this id (of one saga, or of each saga that has one)."""
        sql = f"SELECT version, body FROM {TABLE} WHERE id = ?"
        args: list[object] = [ident]
        if saga is not None:
            sql, args = sql + " AND saga = ?", [ident, saga]
        async with self.database.transaction() as tx:
            rows = await tx.fetch(sql + " ORDER BY saga", *args)
        return [Instance.from_json(str(b), int(v)) for v, b in rows]

    async def instances(
        self, saga: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[Instance]:
        """Instances, oldest first, of a saga and in a state when given."""
        where, args = [], []
        for column, value in (("saga", saga), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT version, body FROM {TABLE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with self.database.transaction() as tx:
            rows = await tx.fetch(sql + " ORDER BY started_at, id LIMIT ?", *args, limit)
        return [Instance.from_json(str(b), int(v)) for v, b in rows]

    async def counts(self) -> dict[tuple[str, str], int]:
        """Instances per (saga, state)."""
        async with self.database.transaction() as tx:
            rows = await tx.fetch(COUNTS)
        return {(str(s), str(st)): int(n) for s, st, n in rows}
