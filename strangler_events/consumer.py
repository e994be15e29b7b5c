"""ResilientConsumer: consume events with a consumer group, dispatch by type, retry with
backoff, dead-letter what keeps failing, and never commit past an event that was not
handled or dead-lettered.

Per partition, events are handled one at a time in offset order; a failing event is
retried in place (delays 1 s, 5 s, 15 s, 30 s by default, with jitter), which holds
back the events behind it so that one aggregate's events never overtake each other.
After the last retry the event goes to the dead-letter topic with the error, the
attempt count and a timestamp, and the consumer moves on (at once when the handler
raises :class:`Reject`: that event can never be handled).  A record that is not an
event, or a version newer than the upcasters know, is dead-lettered at once (retrying
cannot help).  A type with no handler is counted, then skipped or dead-lettered (``unknown=``).

With a ``database``, each handler runs inside the idempotent inbox's transaction
together with the stored position, and a restarted consumer resumes from that
position: a crash re-delivers, never skips, and a re-delivered event has no second
effect.  Offsets are also committed to the group once handled (:mod:`.commits`).

With ``batch=True`` (needs a ``database``) one fetch's records of a partition go in one
transaction (:mod:`strangler_events.batch`; partitions side by side): inbox ids in one
statement, handlers in offset order, position and offset stored once.  When a handler
raises, the batch rolls back and goes again one event at a time: retries, dead letters,
:class:`Reject` and order as without ``batch`` (outside effects may repeat, as on re-delivery).

A position outside the partition's log (the topic was recreated, or retention deleted
events not yet read; see :mod:`strangler_events.guard`) is never skipped silently: by
``on_position_mismatch`` the consumer either stops (``"stop"``, the default: :meth:`run`
raises :class:`~strangler_events.mismatch.PositionMismatch` naming the topic, the
partition, the position and the log's start and end) or rebuilds (``"rebuild"``: in one
transaction it runs ``reset`` (a projection empties its read model) and forgets the
inbox's processed ids and positions, then consumes its partitions from the beginning).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from strangler_events.batch import plan, timed
from strangler_events.commits import commit
from strangler_events.database.port import Database, Tx
from strangler_events.envelope import BadEvent, Event, decode
from strangler_events.guard import PositionGuard
from strangler_events.inbox import Inbox
from strangler_events.mismatch import policy
from strangler_events.topics import DEAD_LETTER_TOPIC
from strangler_events.upcast import TooNew, Upcasters

log = logging.getLogger("strangler.consumer")

DEFAULT_DELAYS = (1.0, 5.0, 15.0, 30.0)
HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)

Handler = Callable[[Event, Tx | None], Awaitable[None]]
Reset = Callable[[Tx | None], Awaitable[None]]  # empties what the handlers built


class Reject(Exception):
    """Raised by a handler for an event that can never be handled (retrying cannot
    help): it is dead-lettered at once, with this message as the error."""


class ConsumerMetrics:
    """The consumer's Prometheus metrics, in a registry of their own unless one is given
    (expose it with ``prometheus_client.generate_latest(metrics.registry)``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        labels = ("consumer", "type")
        self.processed = Counter(
            "strangler_consumer_processed_total", "Events handled.", labels, registry=r
        )
        self.duplicates = Counter(
            "strangler_consumer_duplicates_total",
            "Events already processed (inbox).",
            labels,
            registry=r,
        )
        self.retried = Counter(
            "strangler_consumer_retried_total", "Handler retries.", labels, registry=r
        )
        self.dead = Counter(
            "strangler_consumer_dead_lettered_total",
            "Events sent to the dead-letter topic.",
            labels,
            registry=r,
        )
        self.unknown = Counter(
            "strangler_consumer_unknown_total", "Events with no handler.", labels, registry=r
        )
        self.duration = Histogram(
            "strangler_consumer_handler_seconds",
            "Handler duration.",
            labels,
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "strangler_consumer_lag",
            "Records behind the end of the partition.",
            ("consumer", "topic", "partition"),
            registry=r,
        )
        self.position_mismatches = Counter(
            "strangler_consumer_position_mismatches_total",
            "Positions found outside the log (topic recreated, or events deleted unread).",
            ("consumer", "topic", "partition", "kind"),
            registry=r,
        )


def dead_letter_record(
    record: Any, consumer: str, error: str, attempts: int, event: Event | None
) -> dict[str, Any]:
    """The dead-letter record: the original record whole, and why it is here."""
    value: bytes | None = record.value
    return {
        "event_id": event.id if event else f"{record.topic}:{record.partition}:{record.offset}",
        "event_type": event.type if event else None,
        "consumer": consumer,
        "error": error,
        "attempts": attempts,
        "failed_at": time.time(),
        "original": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "value": value.decode("utf-8", "replace") if value is not None else None,
            "headers": [[k, v.decode("utf-8", "replace")] for k, v in record.headers or ()],
        },
    }


class _Seek(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume from the positions stored with the effects."""

    def __init__(self, owner: ResilientConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner.guard.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner._resume(assigned)


class ResilientConsumer:
    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group: str,
        handlers: dict[str, Handler],
        *,
        database: Database | None = None,
        upcasters: Upcasters | None = None,
        delays: Sequence[float] = DEFAULT_DELAYS,
        jitter: float = 0.1,
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
        unknown: str = "skip",
        metrics: ConsumerMetrics | None = None,
        from_beginning: bool = True,
        on_position_mismatch: str = "stop",
        reset: Reset | None = None,
        batch: bool = False,
    ) -> None:
        if batch and database is None:
            raise ValueError("batch=True needs a database (the inbox makes a batch atomic)")
        self.batch, self.fetch = batch, 1000 if batch else 200  # records per getmany
        if unknown not in ("skip", "dead-letter"):
            raise ValueError(f"unknown= must be 'skip' or 'dead-letter', got {unknown!r}")
        self.on_position_mismatch = policy(on_position_mismatch)
        self.reset = reset
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.group = group
        self.handlers = handlers
        self.upcasters = upcasters or Upcasters()
        self.delays = tuple(delays)
        self.jitter = jitter
        self.dead_letter_topic = dead_letter_topic
        self.unknown = unknown
        self.metrics = metrics or ConsumerMetrics()
        for kind in handlers:  # exported at zero: increase() then sees the first dead letter
            self.metrics.dead.labels(group, kind)
        self.inbox = Inbox(database, group) if database is not None else None
        self.from_beginning = from_beginning
        self.guard = PositionGuard(group, self.metrics.position_mismatches)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def start(self) -> None:
        if self.inbox is not None:
            await self.inbox.init()
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="none",  # out of range must be seen, not reset (guard.py)
            metadata_max_age_ms=1000,
        )
        self._consumer.subscribe(self.topics, listener=_Seek(self))
        await self._consumer.start()

    async def _resume(self, assigned: Any) -> None:
        self.guard.forget(assigned)
        if self.inbox is None or self._consumer is None:
            return
        stored = await self.inbox.positions()
        mine = {
            tp: stored[(tp.topic, tp.partition)]
            for tp in assigned
            if (tp.topic, tp.partition) in stored
        }
        await self.guard.assigned(self._consumer, mine)

    async def _no_position(self, consumer: AIOKafkaConsumer, exc: Exception) -> None:
        """A partition with neither a stored nor a committed position: start it at the
        beginning (``from_beginning``) or at the end."""
        named = [a for a in exc.args if isinstance(a, TopicPartition)]
        tps = [tp for tp in named or consumer.assignment() if tp in consumer.assignment()]
        if not tps:
            return
        if self.from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)

    async def _settle(self, consumer: AIOKafkaConsumer) -> None:
        """Act on the mismatches found: raise the first (``stop``), or rebuild."""
        first = self.guard.found[0]
        if self.on_position_mismatch == "stop":
            raise first
        log.warning(
            "consumer %s: rebuilding from the beginning of its topics (%d position(s) "
            "outside the log)",
            self.group,
            len(self.guard.found),
        )
        await self._clear()
        self.guard.found.clear()
        self.guard.forget()
        assigned = consumer.assignment()
        if assigned:
            consumer.resume(*assigned)
            await consumer.seek_to_beginning(*assigned)

    async def _clear(self) -> None:
        """``reset`` and forgetting the inbox's ids and positions, in one transaction."""
        if self.inbox is None:
            if self.reset is not None:
                await self.reset(None)
            return
        async with self.inbox.database.transaction() as tx:
            if self.reset is not None:
                await self.reset(tx)
            await self.inbox.forget(tx)

    async def stop(self) -> None:
        """Stop consuming; leaving the group is best effort (the broker may be gone)."""
        self._stopping.set()
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        for client in (consumer, producer):
            if client is None:
                continue
            try:
                await client.stop()
            except (KafkaError, OSError) as exc:
                log.warning("stopping the Kafka client: %s", exc)

    async def run(self) -> None:
        """Consume until :meth:`stop`; call :meth:`start` first.  Raises
        :class:`~strangler_events.mismatch.PositionMismatch` under the ``stop`` policy."""
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            if self.guard.found:
                await self._settle(consumer)
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=self.fetch)
            except OffsetOutOfRangeError as exc:
                ranges = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                await self.guard.confirm(consumer, ranges)
                continue
            except NoOffsetForPartitionError as exc:
                await self._no_position(consumer, exc)
                continue
            except KafkaError as exc:
                log.warning("fetch failed, retrying: %s", exc)
                await asyncio.sleep(0.5)
                continue
            await self.guard.idle(consumer, set(consumer.assignment()) - set(batches))
            if self.batch:  # partitions are independent: their batches run side by side
                await asyncio.gather(*(self._batch(consumer, *b) for b in batches.items()))
                continue
            for tp, records in batches.items():
                if not await self._batch(consumer, tp, records):
                    break

    async def _batch(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: Any) -> bool:
        """Handle one partition's records; False when stopping or a mismatch was found."""
        if self.batch and len(records) > 1 and not (self._stopping.is_set() or self.guard.found):
            if await self._together(records):
                await commit(consumer, {tp: records[-1].offset + 1}, self._stopping)
                self.guard.consumed(tp, records[-1].offset + 1)
                self._lag(consumer, tp, records[-1].offset + 1)
                return True
        for record in records:
            if self._stopping.is_set() or self.guard.found:
                return False
            await self._one(record)
            await commit(consumer, {tp: record.offset + 1}, self._stopping)
            self.guard.consumed(tp, record.offset + 1)
        self._lag(consumer, tp, records[-1].offset + 1)
        return True

    async def _together(self, records: Any) -> bool:
        """Batch mode: ``records`` in one transaction; False when they must go one at a
        time instead (a record to dead-letter, or a handler failed: all rolled back)."""
        assert self.inbox is not None
        if (items := plan(records, self.upcasters, self.handlers, self.unknown)) is None:
            return False
        spent: list[float] = []  # each handler's duration
        last = records[-1]
        try:
            ran = await self.inbox.process_batch(
                [(e, timed(h, spent) if h is not None else None) for e, h in items],
                (last.topic, last.partition, last.offset + 1),
            )
        except Exception as exc:  # a handler's failure, or the database's: one at a time
            at = f"{last.topic}/{last.partition}@{records[0].offset}"
            log.info("consumer %s: batch at %s rolled back (%r), one by one", self.group, at, exc)
            return False
        durations = iter(spent)
        for (event, handler), new in zip(items, ran, strict=True):
            labels = (self.group, event.type)
            if handler is None:
                self.metrics.unknown.labels(*labels).inc()
                continue
            if new:
                self.metrics.duration.labels(*labels).observe(next(durations))
            else:
                self.metrics.duplicates.labels(*labels).inc()
            self.metrics.processed.labels(*labels).inc()
        return True

    def _lag(self, consumer: AIOKafkaConsumer, tp: TopicPartition, position: int) -> None:
        end = consumer.highwater(tp)
        if end is not None:
            self.metrics.lag.labels(self.group, tp.topic, str(tp.partition)).set(
                max(0, end - position)
            )

    async def _one(self, record: Any) -> None:
        position = (record.topic, record.partition, record.offset + 1)
        try:
            event = self.upcasters.upcast(decode(record.value))
        except (BadEvent, TooNew) as exc:
            original = None
            try:
                original = decode(record.value)
            except BadEvent:
                pass
            await self._dead_letter(record, f"{type(exc).__name__}: {exc}", 0, original, position)
            return
        handler = self.handlers.get(event.type)
        labels = (self.group, event.type)
        if handler is None:
            self.metrics.unknown.labels(*labels).inc()
            if self.unknown == "dead-letter":
                await self._dead_letter(record, f"no handler for {event.type}", 0, event, position)
            elif self.inbox is not None:
                await self.inbox.skip(position)
            return
        await self._handle(record, event, handler, position)

    async def _handle(
        self, record: Any, event: Event, handler: Handler, position: tuple[str, int, int]
    ) -> None:
        labels = (self.group, event.type)
        attempts = 0
        while True:
            attempts += 1
            start = time.perf_counter()
            try:
                if self.inbox is not None:
                    ran = await self.inbox.process(event, handler, position)
                    if not ran:
                        self.metrics.duplicates.labels(*labels).inc()
                else:
                    await handler(event, None)
                self.metrics.duration.labels(*labels).observe(time.perf_counter() - start)
                self.metrics.processed.labels(*labels).inc()
                return
            except Exception as exc:  # the handler's failure, whatever it is
                error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, Reject) or attempts > len(self.delays):
                    log.error(
                        "event %s dead-lettered after %d attempts: %s", event.id, attempts, error
                    )
                    await self._dead_letter(record, error, attempts, event, position)
                    return
                delay = self.delays[attempts - 1] * (1 + random.uniform(-self.jitter, self.jitter))
                log.warning(
                    "event %s failed (attempt %d), retrying in %.2fs: %s",
                    event.id,
                    attempts,
                    delay,
                    error,
                )
                self.metrics.retried.labels(*labels).inc()
                await self.sleep(delay)

    async def _dead_letter(
        self,
        record: Any,
        error: str,
        attempts: int,
        event: Event | None,
        position: tuple[str, int, int],
    ) -> None:
        assert self._producer is not None
        body = dead_letter_record(record, self.group, error, attempts, event)
        while True:  # the record must be in the dead-letter topic before we move past it
            try:
                await self._producer.send_and_wait(
                    self.dead_letter_topic, json.dumps(body).encode(), key=record.key
                )
                break
            except KafkaError as exc:
                log.error("dead-letter publish failed, retrying: %s", exc)
                await asyncio.sleep(1.0)
        self.metrics.dead.labels(self.group, event.type if event else "?").inc()
        if self.inbox is not None:
            await self.inbox.skip(position)
