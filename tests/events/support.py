"""Helpers for consumer tests on the real broker: publish events, run a consumer until a
condition holds, read a topic back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from events.consumer import ResilientConsumer
from events.envelope import Event, encode
from gateway.tasks import spawn


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


async def publish(bootstrap: str, topic: str, values: list[Event | bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            if isinstance(value, Event):
                await producer.send_and_wait(topic, encode(value), key=value.aggregateid.encode())
            else:
                await producer.send_and_wait(topic, value, key=b"raw")
    finally:
        await producer.stop()


async def run_until(
    consumer: ResilientConsumer, done: Callable[[], bool], timeout: float = 30.0
) -> None:
    """Run ``consumer`` until ``done()`` holds (fails after ``timeout``), then stop it."""
    await consumer.start()
    task = spawn(consumer.run(), name="test-consumer")
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if task.done():
                task.result()
                raise AssertionError("the consumer stopped")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached within {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
