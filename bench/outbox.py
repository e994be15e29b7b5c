#!/usr/bin/env python3
"""Outbox relay benchmark: PostgreSQL outbox -> Kafka-protocol broker, next to raw aiokafka.

    make bench-outbox            # or: .venv/bin/python bench/outbox.py
    EVENTS=200000 make bench-outbox

In one run, on a throwaway PostgreSQL cluster and a local broker (tansu, or
``STRANGLER_TEST_KAFKA``):

1. raw produce: aiokafka sends EVENTS records of the relay's envelope size,
   acks=all, without waiting per record (the baseline the relay is measured against);
   beside it the relay's own sink alone (the same records in the relay's batches through
   whole record batches, no PostgreSQL): how much of the gap the database accounts for;
2. relay throughput: EVENTS rows inserted into the outbox first, then the relay
   drains them; events/s over the whole drain (sustained, not a burst);
3. end-to-end latency at low rate: with the relay idle and LISTENing, one event
   every 20 ms is inserted; a consumer (``fetch_max_wait_ms=5``) records when it
   arrives.  p50/p99.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from gateway.capture.kafka_sink import KafkaSink, envelope, record_headers  # noqa: E402
from gateway.capture.outbox.postgres import PostgresOutbox  # noqa: E402
from gateway.capture.relay import Relay  # noqa: E402
from gateway.capture.rules import Event  # noqa: E402
from tests.harness import Broker, postgres_cluster  # noqa: E402

EVENTS = int(os.environ.get("EVENTS", "100000"))
LATENCY_SAMPLES = int(os.environ.get("LATENCY_SAMPLES", "300"))
RELAY_BATCH = 5000


def make_event(n: int, stamp: float = 0.0) -> Event:
    return Event(
        str(uuid.uuid4()),
        "order",
        str(n % 1000),
        "OrderUpdated",
        {"request": {"quantity": n, "note": "x" * 64}, "response": {"id": n % 1000, "sent": stamp}},
        time.time(),
        {
            "schema_version": 1,
            "request_id": uuid.uuid4().hex,
            "route": "orders",
            "source": "gateway",
        },
    )


async def raw_produce(bootstrap: str) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=256 * 1024
    )
    await producer.start()
    events = [make_event(n) for n in range(EVENTS)]
    topic = f"raw-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    futures = [
        await producer.send(
            topic, envelope(e), key=e.aggregateid.encode(), headers=record_headers(e)
        )
        for e in events
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return EVENTS / elapsed


async def sink_alone(bootstrap: str, batch: int) -> float:
    events = [make_event(n) for n in range(EVENTS)]
    for e in events:
        e.encoded = envelope(e)  # as the PostgreSQL store hands rows over
    sink = KafkaSink(bootstrap, f"sink-{uuid.uuid4().hex[:6]}.{{aggregate}}")
    await sink.start()
    started = time.perf_counter()
    for start in range(0, EVENTS, batch):
        results = await sink.publish(events[start : start + batch])
        if any(results):
            raise RuntimeError(f"sink refused records: {next(r for r in results if r)}")
    elapsed = time.perf_counter() - started
    await sink.stop()
    return EVENTS / elapsed


async def relay_throughput(dsn: str, bootstrap: str) -> tuple[float, float]:
    store = PostgresOutbox(dsn)
    await store.init()
    for start in range(0, EVENTS, 5000):
        await store.append([make_event(n) for n in range(start, min(start + 5000, EVENTS))])
    sink = KafkaSink(bootstrap, f"relay-{uuid.uuid4().hex[:6]}.{{aggregate}}")
    relay = Relay(store, sink, batch=RELAY_BATCH)
    started = time.perf_counter()
    task = asyncio.ensure_future(relay.run())
    # Watch the relay's own counter: polling the outbox would load the database under test.
    while relay.published.get() < EVENTS:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    while (await store.status()).pending:  # the last marks land just after the acks
        if time.perf_counter() - started > 600:
            raise RuntimeError("relay acknowledged everything but rows stay pending")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    relay.stopping.set()
    await task
    await sink.stop()
    await store.close()
    return EVENTS / elapsed, elapsed


async def idle_latency(dsn: str, bootstrap: str) -> list[float]:
    topic_template = f"lat-{uuid.uuid4().hex[:6]}.{{aggregate}}"
    store, writer = PostgresOutbox(dsn), PostgresOutbox(dsn)
    await store.init()
    sink = KafkaSink(bootstrap, topic_template)
    relay = Relay(store, sink)
    task = asyncio.ensure_future(relay.run())
    consumer = AIOKafkaConsumer(
        topic_template.format(aggregate="order"),
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=f"lat-{uuid.uuid4().hex[:6]}",
        # A latency-minded consumer: the broker answers a fetch as soon as it has data
        # rather than after up to aiokafka's default 500 ms.
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    await asyncio.sleep(1.0)
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < LATENCY_SAMPLES:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for msgs in batch.values():
                for m in msgs:
                    sent = json.loads(m.value)["payload"]["response"]["sent"]
                    latencies.append(now - sent)

    reading = asyncio.ensure_future(consume())
    await asyncio.sleep(1.0)  # the consumer has its partitions
    for n in range(LATENCY_SAMPLES):
        await writer.append([make_event(n, time.time())])
        await asyncio.sleep(0.02)
    await asyncio.wait_for(reading, 30)
    relay.stopping.set()
    await task
    await consumer.stop()
    await sink.stop()
    await store.close()
    await writer.close()
    return latencies


async def run(dsn: str, bootstrap: str) -> None:
    print(f"events: {EVENTS:,}; broker {bootstrap}; PostgreSQL {dsn}", file=sys.stderr)
    raw = await raw_produce(bootstrap)
    alone = await sink_alone(bootstrap, RELAY_BATCH)
    relay, elapsed = await relay_throughput(dsn, bootstrap)
    lat = sorted(await idle_latency(dsn, bootstrap))
    p50 = statistics.median(lat) * 1000
    p99 = lat[int(len(lat) * 0.99) - 1] * 1000
    print(f"\n# outbox relay benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print("| measure | value |\n|---|---|")
    print(f"| raw aiokafka produce (acks=all, batched) | {raw:,.0f} msg/s |")
    print(
        f"| the relay's sink alone, {RELAY_BATCH:,}-event batches, no PostgreSQL | "
        f"{alone:,.0f} msg/s ({alone / raw:.0%} of raw) |"
    )
    print(
        f"| relay PostgreSQL -> broker, sustained over {EVENTS:,} events | {relay:,.0f} events/s "
        f"({elapsed:.1f} s, {relay / raw:.0%} of raw) |"
    )
    print(f"| end-to-end latency at 50 events/s, p50 | {p50:.1f} ms |")
    print(f"| end-to-end latency at 50 events/s, p99 | {p99:.1f} ms |")


def with_services(bench: Callable[[str, str], Coroutine[Any, Any, None]]) -> int:
    """Run ``bench(dsn, bootstrap)`` on a throwaway PostgreSQL cluster and a local broker
    (tansu, or ``STRANGLER_TEST_KAFKA``)."""
    existing = os.environ.get("STRANGLER_TEST_KAFKA")
    broker = None if existing else Broker()
    if broker is not None:
        broker.start()
    try:
        with postgres_cluster() as cluster:
            asyncio.run(bench(cluster.dsn, existing or (broker.bootstrap if broker else "")))
    finally:
        if broker is not None:
            broker.stop()
    return 0


def main() -> int:
    return with_services(run)


if __name__ == "__main__":
    sys.exit(main())
