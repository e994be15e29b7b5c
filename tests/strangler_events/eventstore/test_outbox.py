"""Publishing through the gateway's outbox: a contract test against the gateway's own
outbox store (its ``init()`` creates the table, its ``pending()`` reads the rows, so a
schema change on either side fails here), on both adapters; and the path end to end:
append with the outbox -> the gateway's relay -> the real broker, keyed by stream id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from gateway.capture.kafka_sink import KafkaSink, envelope
from gateway.capture.outbox import OutboxStore, open_store
from gateway.capture.relay import Relay
from gateway.capture.rules import Event
from strangler_events.eventstore import (
    NO_STREAM,
    DuplicateEventId,
    EventStore,
    EventStoreError,
    NewEvent,
    OutboxSpec,
    open_event_store,
)
from strangler_events.eventstore.outbox import aggregate, headers
from tests.eventually import eventually


@pytest.fixture
async def stores(url: str) -> AsyncIterator[tuple[EventStore, OutboxStore]]:
    outbox = open_store(url)
    await outbox.init()  # the gateway's schema, not a copy
    store = open_event_store(url)
    await store.init()
    try:
        yield store, outbox
    finally:
        await store.close()
        await outbox.close()


def published(outbox_rows: list[Any]) -> list[dict[str, Any]]:
    """What the relay would put in each record's value."""
    return [json.loads(envelope(r.event)) for r in outbox_rows]


def test_rows_map_category_id_and_headers() -> None:
    assert aggregate("order-4-2", OutboxSpec()) == ("order", "4-2")
    assert aggregate("order-42", OutboxSpec(topic_category="sales")) == ("sales", "42")
    assert headers({"traceparent": "t"}, 2, "order-1", 3, 99) == {
        "traceparent": "t",
        "schema_version": 2,
        "stream": "order-1",
        "stream_version": 3,
        "position": 99,
    }


async def test_the_gateways_outbox_sees_appended_events(
    stores: tuple[EventStore, OutboxStore],
) -> None:
    store, outbox = stores
    meta = {"correlation_id": "c-1", "traceparent": "00-abc-def-01"}
    opened = NewEvent("OrderPlaced", {"total": 10}, meta)
    paid = NewEvent("OrderPaid", {"amount": 10}, schema_version=2)
    result = await store.append("order-42", [opened, paid], NO_STREAM, outbox=OutboxSpec())
    await store.append("order-43", [NewEvent("Quiet", {})])  # not published: no outbox
    rows = await outbox.pending(100)
    assert [r.event.id for r in rows] == [opened.id, paid.id]
    assert [(r.event.aggregatetype, r.event.aggregateid, r.event.type) for r in rows] == [
        ("order", "42", "OrderPlaced"),
        ("order", "42", "OrderPaid"),
    ]
    values = published(rows)
    assert [v["payload"] for v in values] == [{"total": 10}, {"amount": 10}]
    assert [v["schema_version"] for v in values] == [1, 2]
    assert values[0]["metadata"]["traceparent"] == "00-abc-def-01"
    assert values[0]["metadata"]["correlation_id"] == "c-1"
    assert [v["metadata"]["stream_version"] for v in values] == [1, 2]
    assert values[1]["metadata"]["position"] == result.last_position
    assert all(v["metadata"]["stream"] == "order-42" for v in values)
    events = await store.read_stream("order-42")
    assert values[0]["occurred_at"] == pytest.approx(events[0].recorded_at, abs=1e-3)
    # A retried append does not publish twice.
    assert await store.append("order-42", [opened, paid], NO_STREAM, OutboxSpec()) == result
    assert len(await outbox.pending(100)) == 2


async def test_the_topic_category_can_differ_from_the_stream_category(
    stores: tuple[EventStore, OutboxStore],
) -> None:
    store, outbox = stores
    await store.append("orderv2-7", [NewEvent("X", {})], outbox=OutboxSpec(topic_category="order"))
    (row,) = await outbox.pending(10)
    assert (row.event.aggregatetype, row.event.aggregateid) == ("order", "7")


async def test_an_id_the_outbox_already_has_is_refused_and_nothing_is_appended(
    stores: tuple[EventStore, OutboxStore],
) -> None:
    store, outbox = stores
    captured = str(uuid.uuid4())
    await outbox.append([Event(captured, "order", "1", "Captured", {}, 1.0, {})])
    fresh = NewEvent("X", {})
    with pytest.raises(DuplicateEventId, match=f"event id {captured} is already stored"):
        await store.append("order-1", [fresh, NewEvent("Y", {}, id=captured)], outbox=OutboxSpec())
    assert await store.stream_version("order-1") == 0
    assert [r.event.id for r in await outbox.pending(10)] == [captured]


async def test_without_the_outbox_table_nothing_is_appended(url: str) -> None:
    store = open_event_store(url)
    await store.init()
    try:
        with pytest.raises(EventStoreError, match="strangler outbox init"):
            await store.append("order-1", [NewEvent("X", {})], outbox=OutboxSpec())
        assert await store.stream_version("order-1") == 0  # one transaction: all or nothing
    finally:
        await store.close()


async def consume(bootstrap: str, topic: str, want: int) -> list[tuple[str, dict[str, Any]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"t-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    got: list[tuple[str, dict[str, Any]]] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                got.extend((m.key.decode(), json.loads(m.value)) for m in msgs if m.key)
            return len(got) >= want

        await eventually(enough, timeout=30, message=f"{want} records on {topic}")
    finally:
        await consumer.stop()
    return got


@pytest.mark.postgres
@pytest.mark.kafka
async def test_appended_events_reach_the_broker_keyed_by_stream_id(
    pg_database: str, kafka_bootstrap: str
) -> None:
    category = f"e2e{uuid.uuid4().hex[:8]}"
    outbox = open_store(pg_database)
    await outbox.init()
    store = open_event_store(pg_database)
    await store.init()
    relay = Relay(outbox, KafkaSink(kafka_bootstrap))  # topic template events.{aggregate}
    running = asyncio.ensure_future(relay.run())
    try:
        for version in range(5):
            for ident in ("a", "b", "c"):
                await store.append(
                    f"{category}-{ident}",
                    [NewEvent("Counted", {"n": version})],
                    version,
                    outbox=OutboxSpec(),
                )
        records = await consume(kafka_bootstrap, f"events.{category}", 15)
    finally:
        relay.stopping.set()
        await running
        await relay.sink.stop()
        await store.close()
        await outbox.close()
    by_key: dict[str, list[int]] = {}
    for key, value in records:
        assert value["aggregateid"] == key and value["aggregatetype"] == category
        by_key.setdefault(key, []).append(value["payload"]["n"])
    assert by_key == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4], "c": [0, 1, 2, 3, 4]}
