"""The event store's read side: an aggregate's events, or a whole topic, read back from
Kafka in order (the topic is the log; keys are aggregate ids, so one aggregate's
events are in one partition, in order)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from strangler_events.envelope import BadEvent, Event, decode

IDLE_POLLS = 3  # empty fetches in a row that end the read when no end is known


async def records(
    bootstrap: str, topic: str
) -> AsyncIterator[tuple[TopicPartition, int, bytes | None, bytes | None]]:
    """Every record of ``topic`` up to its current end: (partition, offset, key, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=f"strangler-history-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # a topic created meanwhile
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        # ListOffsets can under-report the end (some brokers give a record batch's base
        # offset + 1), so the high watermark of each fetch response has the last word.
        listed = await consumer.end_offsets(tps)
        done: set[TopicPartition] = set()
        idle = 0
        while len(done) < len(tps) and idle < IDLE_POLLS:
            pending = [tp for tp in tps if tp not in done]
            batch = await consumer.getmany(*pending, timeout_ms=300, max_records=500)
            idle = 0 if batch else idle + 1
            for tp, found in batch.items():
                for record in found:
                    yield tp, record.offset, record.key, record.value
            for tp in pending:
                high = consumer.highwater(tp)
                end = max(listed[tp], high or 0)
                if high is not None and await consumer.position(tp) >= end:
                    done.add(tp)
    finally:
        await consumer.stop()


async def history(bootstrap: str, topic: str, aggregateid: str | None = None) -> list[Event]:
    """The events of ``topic`` (only ``aggregateid``'s when given), in log order per
    partition; records that are not events are left out."""
    out = []
    key = aggregateid.encode() if aggregateid is not None else None
    async for _, _, record_key, value in records(bootstrap, topic):
        if key is not None and record_key != key:
            continue
        try:
            out.append(decode(value))
        except BadEvent:
            continue
    return out
