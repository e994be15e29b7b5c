"""Projections: read models built from events, rebuildable from the start of the topics.

A :class:`Projection` names its tables' schema, how to empty them, how to forget one
aggregate, and a handler per event type that applies the event with the transaction
it is given.  :meth:`consumer` gives the :class:`ResilientConsumer` that keeps it up
to date (group = the projection's name; inbox and position in the same transaction
as the writes).  :meth:`rebuild` empties the tables, forgets the processed ids and
positions, and replays the topics from the beginning up to their current end;
:meth:`reproject` rebuilds one aggregate from its events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.consumer import ConsumerMetrics, Handler, ResilientConsumer
from events.database import Database, Tx
from events.envelope import BadEvent, Event, decode
from events.history import history, records
from events.inbox import Inbox
from events.upcast import TooNew, Upcasters

Apply = Callable[[Event, Tx], Awaitable[None]]


@dataclass
class Projection:
    name: str
    database: Database
    schema: str
    reset_sql: Sequence[str]  # statements that empty the read model
    forget_sql: Sequence[str]  # statements that delete one aggregate ("?" = its id)
    handlers: dict[str, Apply]
    upcasters: Upcasters = field(default_factory=Upcasters)

    async def init(self) -> None:
        await self.database.script(self.schema)
        await Inbox(self.database, self.name).init()

    def _bound(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {}
        for kind, apply in self.handlers.items():

            async def handler(event: Event, tx: Tx | None, apply: Apply = apply) -> None:
                assert tx is not None
                await apply(event, tx)

            out[kind] = handler
        return out

    def consumer(self, bootstrap: str, topics: Sequence[str], **options: Any) -> ResilientConsumer:
        return ResilientConsumer(
            bootstrap,
            topics,
            self.name,
            self._bound(),
            database=self.database,
            upcasters=self.upcasters,
            metrics=options.pop("metrics", None) or ConsumerMetrics(),
            **options,
        )

    async def rebuild(self, bootstrap: str, topics: Sequence[str]) -> int:
        """Empty the read model and apply every event of ``topics`` again; returns how many
        events were applied.  Run it with the projection's consumer stopped."""
        inbox = Inbox(self.database, self.name)
        async with self.database.transaction() as tx:
            for sql in self.reset_sql:
                await tx.execute(sql)
        await inbox.forget()
        applied = 0
        for topic in topics:
            async for tp, offset, _, value in records(bootstrap, topic):
                try:
                    event = self.upcasters.upcast(decode(value))
                except (BadEvent, TooNew):
                    await inbox.skip((topic, tp.partition, offset + 1))
                    continue
                apply = self.handlers.get(event.type)
                position = (topic, tp.partition, offset + 1)
                if apply is None:
                    await inbox.skip(position)
                    continue
                if await inbox.process(event, apply, position):
                    applied += 1
        return applied

    async def reproject(self, bootstrap: str, topic: str, aggregateid: str) -> int:
        """Rebuild one aggregate of the read model from its events; returns how many."""
        events = [self.upcasters.upcast(e) for e in await history(bootstrap, topic, aggregateid)]
        async with self.database.transaction() as tx:
            for sql in self.forget_sql:
                await tx.execute(sql, aggregateid)
            for event in events:
                apply = self.handlers.get(event.type)
                if apply is not None:
                    await apply(event, tx)
        return len(events)
