"""The saga runner: consumes start and reply events, fires deadlines, stores each
transition with its commands.

Events come through the :class:`~strangler_events.consumer.ResilientConsumer` with the
saga store's database as its inbox: the inbox's record of the event, the consumer's
position, the instance's new state and the commands it emits commit in one
transaction (:meth:`SagaStore.apply`, which also decides again after a version
conflict).  So a crash anywhere re-delivers the event at most, and a re-delivered event
has no second effect.  With ``batch`` (the default) the consumer applies one fetch's
events of a partition in one such transaction, in order (the consumer's batch mode).
The commands reach the participants through the outbox relay.

Deadlines are a column of the instance: every ``poll`` seconds the runner asks the
store for the instances whose deadline passed and applies the time to each, so a
deadline set before a restart fires after it.  Several runners may share a saga (the
consumer group splits the events, the store's versions settle any race on deadlines).

An event that finds no instance follows the definition's ``unmatched`` policy: counted
in ``strangler_saga_unmatched_total`` and skipped, or dead-lettered (:class:`Reject`).
A reply the instance no longer waits for (a duplicate, a stale attempt) is counted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from strangler_events.consumer import DEFAULT_DELAYS, ConsumerMetrics, Reject, ResilientConsumer
from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event
from strangler_events.saga import machine
from strangler_events.saga.definition import SagaDefinition
from strangler_events.saga.instance import Decision, Instance
from strangler_events.saga.metrics import SagaMetrics
from strangler_events.saga.store import Hook, SagaStore

log = logging.getLogger("strangler.saga")

NO_INSTANCE = "no instance"
REJECTED_REMEMBERED = 10_000  # event ids whose rejection was counted (batch, then one by one)


def topics_for(definition: SagaDefinition, template: str = "events.{aggregate}") -> list[str]:
    """The Kafka topics the runner consumes: ``listens_to`` through the relay's template."""
    return [template.format(aggregate=c, type="") for c in definition.listens_to]


class SagaRunner:
    """Runs one saga: ``await runner.start()``, then ``await runner.run()`` until
    :meth:`stop`.

    ``before_commit`` (tests): awaited in each transition's transaction, before commit.
    ``clock``: the time transitions and deadlines use (epoch seconds).
    ``batch``: the consumer's batch mode (one transaction per fetch and partition)."""

    def __init__(
        self,
        definition: SagaDefinition,
        database: Database,
        bootstrap: str,
        *,
        topic_template: str = "events.{aggregate}",
        group: str | None = None,
        metrics: SagaMetrics | None = None,
        consumer_metrics: ConsumerMetrics | None = None,
        poll: float = 0.2,
        delays: Sequence[float] = DEFAULT_DELAYS,
        before_commit: Hook | None = None,
        clock: Callable[[], float] = time.time,
        batch: bool = True,
    ) -> None:
        self.definition = d = definition
        self.store = SagaStore(database, before_commit=before_commit)
        self.metrics = metrics or SagaMetrics()
        self.metrics.prepare(d.name)
        self.poll = poll
        self.clock = clock
        handlers = {t: self._reply for t in d.reply_types()}
        handlers[d.start] = self._start
        self.consumer = ResilientConsumer(
            bootstrap,
            topics_for(d, topic_template),
            group or f"saga-{d.name}",
            handlers,  # type: ignore[arg-type]  # the inbox always passes a Tx
            database=database,
            delays=delays,
            metrics=consumer_metrics,
            batch=batch,
        )
        self._stopping = asyncio.Event()
        self._rejected: dict[str, None] = {}  # insertion-ordered: oldest first

    async def start(self) -> None:
        await self.store.init()
        await self.consumer.start()

    async def run(self) -> None:
        """Consume and fire deadlines until :meth:`stop` (a consumer failure raises)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._deadlines(), name=f"saga-{self.definition.name}")
                try:
                    await self.consumer.run()
                finally:
                    self._stopping.set()
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def stop(self) -> None:
        self._stopping.set()
        await self.consumer.stop()

    async def _apply(
        self,
        ident: str,
        decide: Callable[[Instance | None], Decision],
        tx: Tx | None,
        new: bool = False,
    ) -> Decision:
        before, name = self.store.conflicts, self.definition.name
        decision = await self.store.apply(name, ident, decide, tx, new=new)
        if self.store.conflicts > before:
            self.metrics.conflicts.labels(name).inc(self.store.conflicts - before)
        facts = decision.facts
        if tx is None:  # the store's own transaction: committed by now
            self.metrics.count(name, facts)
        else:  # a batch that rolls back runs this again: count what committed, once
            tx.on_commit(lambda: self.metrics.count(name, facts))
        return decision

    async def _start(self, event: Event, tx: Tx) -> None:
        d, now = self.definition, self.clock()
        key = d.correlate(event.payload)
        if key is None:
            await self._unmatched(event, f"no {d.key!r} in the payload", tx)
            return

        def decide(found: Instance | None) -> Decision:
            if found is not None:
                return Decision.nothing("duplicate start")
            return machine.start(d, event, now)

        decision = await self._apply(key, decide, tx, new=True)  # no read: INSERT checks
        if decision.ignored is not None:
            tx.on_commit(self.metrics.unmatched.labels(d.name, decision.ignored).inc)

    async def _reply(self, event: Event, tx: Tx) -> None:
        d, now = self.definition, self.clock()
        key = d.correlate(event.payload)
        if key is None:
            await self._unmatched(event, f"no {d.key!r} in the payload", tx)
            return

        def decide(found: Instance | None) -> Decision:
            if found is None:
                return Decision.nothing(NO_INSTANCE)
            return machine.on_reply(d, found, event, now)

        decision = await self._apply(key, decide, tx)
        if decision.ignored == NO_INSTANCE:
            await self._unmatched(event, NO_INSTANCE, tx)
        elif decision.ignored is not None:
            tx.on_commit(self.metrics.unmatched.labels(d.name, "not awaited").inc)
            log.info("saga %s %s: %s ignored: %s", d.name, key, event.type, decision.ignored)

    async def _unmatched(self, event: Event, why: str, tx: Tx) -> None:
        d = self.definition
        counter = self.metrics.unmatched.labels(d.name, why)
        if d.unmatched == "dead-letter":
            # rejected in a batch, then again one by one: count each event once
            if event.id not in self._rejected:
                self._rejected[event.id] = None
                counter.inc()
                if len(self._rejected) > REJECTED_REMEMBERED:
                    del self._rejected[next(iter(self._rejected))]
            raise Reject(f"saga {d.name}: {event.type} {event.id}: {why}")
        tx.on_commit(counter.inc)
        log.warning("saga %s: %s %s ignored: %s", d.name, event.type, event.id, why)

    async def fire_deadlines(self) -> int:
        """Apply the time to every instance whose deadline passed; how many changed."""
        d, changed = self.definition, 0
        for ident in await self.store.due(d.name, self.clock()):
            now = self.clock()

            def decide(found: Instance | None, now: float = now) -> Decision:
                if found is None:
                    return Decision.nothing(NO_INSTANCE)
                return machine.on_time(d, found, now)

            decision = await self._apply(ident, decide, None)
            changed += decision.instance is not None
        return changed

    async def refresh_gauges(self) -> None:
        self.metrics.states(self.definition.name, await self.store.counts())

    async def _deadlines(self) -> None:
        last_gauges = 0.0
        while not self._stopping.is_set():
            try:
                await self.fire_deadlines()
                if time.monotonic() - last_gauges >= 1.0:
                    await self.refresh_gauges()
                    last_gauges = time.monotonic()
            except Exception as exc:  # a failed round (database down, ...): try again
                log.warning("saga %s deadlines: %s", self.definition.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll)
