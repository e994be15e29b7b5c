"""Projections: read models built from events, rebuildable from the start of the topics.

A :class:`Projection` names its tables' schema, how to empty them, how to forget one
aggregate, and a handler per event type that applies the event with the transaction
it is given.  :meth:`consumer` gives the :class:`ResilientConsumer` that keeps it up
to date (group = the projection's name; inbox and position in the same transaction
as the writes).  :meth:`rebuild` empties the tables, forgets the processed ids and
positions (:meth:`clear`), and replays the topics from the beginning up to their
current end; :meth:`reproject` rebuilds one aggregate from its events.

When the consumer finds its stored position outside the log (the topic was recreated,
or events were deleted unread), it acts by ``on_position_mismatch``: ``"stop"`` (the
default) raises, ``"rebuild"`` clears the projection the same way and consumes the
topics again from the beginning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strangler_events.consumer import Handler, ResilientConsumer
from strangler_events.database.port import Database, Tx
from strangler_events.envelope import BadEvent, Event, decode
from strangler_events.history import history, records
from strangler_events.inbox import Inbox
from strangler_events.upcast import TooNew, Upcasters

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

    def consumer(
        self,
        bootstrap: str,
        topics: Sequence[str],
        on_position_mismatch: str = "stop",
        **options: Any,
    ) -> ResilientConsumer:
        """The consumer that keeps this projection up to date; ``options`` go to
        :class:`ResilientConsumer` (``metrics=`` to share one :class:`ConsumerMetrics`).
        With ``on_position_mismatch="rebuild"`` a stored position outside the log makes
        it clear the projection (as :meth:`rebuild` does) and consume from the start."""
        return ResilientConsumer(
            bootstrap,
            topics,
            self.name,
            self._bound(),
            database=self.database,
            upcasters=self.upcasters,
            on_position_mismatch=on_position_mismatch,
            reset=self._empty,
            **options,
        )

    async def _empty(self, tx: Tx | None) -> None:
        assert tx is not None  # the projection's consumer always has its database
        for sql in self.reset_sql:
            await tx.execute(sql)

    async def clear(self) -> None:
        """Empty the read model and forget the processed ids and positions, together."""
        async with self.database.transaction() as tx:
            await self._empty(tx)
            await Inbox(self.database, self.name).forget(tx)

    async def rebuild(self, bootstrap: str, topics: Sequence[str]) -> int:
        """Empty the read model and apply every event of ``topics`` again; returns how many
        events were applied.  Run it with the projection's consumer stopped."""
        inbox = Inbox(self.database, self.name)
        await self.clear()
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
