"""Helpers for consumer tests on the real broker: publish events, run a consumer until a
condition holds, read a consumer's metrics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from gateway.tasks import spawn
from strangler_events.consumer import ResilientConsumer
from strangler_events.envelope import Event, encode
from tests.eventually import GiveUp, describe, eventually


def count(consumer: ResilientConsumer, metric: str, type: str) -> float:
    """``strangler_consumer_<metric>_total`` for this consumer's group and an event type."""
    value = consumer.metrics.registry.get_sample_value(
        f"strangler_consumer_{metric}_total", {"consumer": consumer.group, "type": type}
    )
    return value or 0.0


def topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def event(
    n: int, kind: str = "Thing", aggregate: str = "1", version: int = 1, **payload: Any
) -> Event:
    return Event(
        f"ev-{uuid.uuid4().hex[:8]}-{n}",
        kind,
        "thing",
        aggregate,
        {"n": n, **payload},
        schema_version=version,
    )


async def publish(
    bootstrap: str, topic: str, values: Sequence[Event | bytes], *, batched: bool = False
) -> None:
    """Produce ``values`` in order (events keyed by their aggregate id): each acknowledged
    before the next is sent, or, ``batched``, all sent and then flushed at once."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            if isinstance(value, Event):
                record, key = encode(value), value.aggregateid.encode()
            else:
                record, key = value, b"raw"
            if batched:
                await producer.send(topic, record, key=key)
            else:
                await producer.send_and_wait(topic, record, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def run_until(
    consumer: ResilientConsumer, done: Callable[[], bool], timeout: float = 30.0
) -> None:
    """Run ``consumer`` until ``done()`` holds (fails after ``timeout``), then stop it."""
    await consumer.start()
    task = spawn(consumer.run(), name="test-consumer")

    def reached() -> bool:
        if task.done():
            crash = None if task.cancelled() else task.exception()
            raise GiveUp(f"the consumer stopped: {crash!r}") from crash
        return done()

    try:
        await eventually(reached, timeout=timeout, interval=0.05, message=describe(done))
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
