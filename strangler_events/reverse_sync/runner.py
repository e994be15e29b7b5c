"""The reverse sync, running: a :class:`~strangler_events.consumer.ResilientConsumer` on
the service's topics whose handler applies each event to the legacy system.

Guarantees, all from the consumer and its inbox (``database``):

* per-aggregate order: a topic's records are keyed by aggregate id, and each partition
  is applied one event at a time, in offset order;
* no gap, no double apply: an event id is recorded in the inbox, with the position,
  once its write is answered; a restarted sync (even after SIGKILL) resumes after the
  last recorded event.  The one window left -- killed after the legacy system applied a
  write and before the inbox recorded it -- re-sends that write with the same event id,
  which the legacy side recognises (``x-strangler-event-id``), and the writes are
  idempotent anyway (a PUT of the whole state, a DELETE);
* the legacy system down: a failing write is retried in place with ``delays`` (about
  two minutes in all by default), holding back the events behind it, then
  dead-lettered with the error;
* lag: ``strangler_consumer_lag`` (records behind the end, per partition) in the
  consumer's metrics, and :func:`lag` for a status report from the stored positions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from strangler_events.consumer import ConsumerMetrics, ResilientConsumer
from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event
from strangler_events.inbox import Inbox
from strangler_events.reverse_sync.http import HttpWriter
from strangler_events.reverse_sync.plan import SyncTarget, plan
from strangler_events.topics import DEAD_LETTER_TOPIC

DEFAULT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

log = logging.getLogger("strangler.reverse_sync")


def group_of(target: SyncTarget) -> str:
    return f"reverse-sync-{target.aggregate}"


class ReverseSync:
    """Apply ``target``'s events from ``topics`` to the legacy system."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        target: SyncTarget,
        database: Database,
        *,
        group: str | None = None,
        delays: Sequence[float] = DEFAULT_DELAYS,
        metrics: ConsumerMetrics | None = None,
        writer: HttpWriter | None = None,
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
    ) -> None:
        self.target = target
        self.writer = writer or HttpWriter()
        self.metrics = metrics or ConsumerMetrics()

        def make() -> ResilientConsumer:
            return ResilientConsumer(
                bootstrap,
                topics,
                group or group_of(target),
                dict.fromkeys(target.event_types, self._apply),
                database=database,
                delays=delays,
                metrics=self.metrics,
                dead_letter_topic=dead_letter_topic,
            )

        self._make = make
        self.consumer = self._make()
        self._stopped = False

    async def _apply(self, event: Event, tx: Tx | None) -> None:
        write = plan(event, self.target)
        if write is not None:  # None: not the service's write; the inbox records it as seen
            await self.writer.write(write)

    async def start(self) -> None:
        await self.consumer.start()

    async def run(self) -> None:
        """Apply events until :meth:`stop`.  A consumer that fails on the broker (a commit
        refused after a rebalance, say) is replaced by a new one, which resumes from the
        inbox's positions: nothing is skipped, and the inbox keeps anything from applying
        twice."""
        while True:
            try:
                await self.consumer.run()
                return
            except KafkaError as exc:
                if self._stopped:
                    return
                log.warning("reverse sync of %s: %r; restarting", self.target.aggregate, exc)
                await self.consumer.stop()
                self.consumer = self._make()
                await self.consumer.start()

    async def stop(self) -> None:
        """Stop consuming and close the writer (again: nothing more)."""
        self._stopped = True
        await self.consumer.stop()
        if not self.writer.client.is_closed:
            await self.writer.close()


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    position: int  # the next offset to apply (0: nothing applied yet)
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)


async def lag(
    bootstrap: str, topics: Sequence[str], database: Database, group: str
) -> list[PartitionLag]:
    """Per partition of ``topics``: the stored position of ``group`` and the log's end."""
    positions = await Inbox(database, group).positions()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await _ends(consumer, tps)
    finally:
        await consumer.stop()
    return [
        PartitionLag(tp.topic, tp.partition, positions.get((tp.topic, tp.partition), 0), ends[tp])
        for tp in tps
    ]


async def _ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The log end of each partition.  ListOffsets can under-report it (some brokers give
    a record batch's base offset + 1), so the high watermark of a fetch has the last word."""
    if not tps:
        return {}
    listed: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(0, listed[tp] - 1))
    ends = dict(listed)
    for _ in range(10):  # a fetch per partition sets its high watermark
        await consumer.getmany(*tps, timeout_ms=300)
        marks = {tp: consumer.highwater(tp) for tp in tps}
        for tp, mark in marks.items():
            if mark is not None:
                ends[tp] = max(ends[tp], mark)
        if all(mark is not None for mark in marks.values()):
            break
    return ends
