"""The event store's read side: an aggregate's events, or a whole topic, read back from
Kafka in order (the topic is the log; keys are aggregate ids, so one aggregate's
events are in one partition, in order)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.envelope import BadEvent, Event, decode


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
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
                for record in batch.get(tp, []):
                    if record.offset < ends[tp]:
                        yield tp, record.offset, record.key, record.value
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
