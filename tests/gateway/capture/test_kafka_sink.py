"""The Kafka sink against the real test broker: records, keys, headers and refusals."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from gateway.capture import kafka_sink
from gateway.capture.kafka_sink import (
    BrokerUnavailable,
    KafkaSink,
    PublishError,
    envelope,
    envelope_from_text,
    partition_for,
    record_headers,
    topic_for,
)
from gateway.capture.rules import Event
from tests.eventually import eventually
from tests.harness import free_port


def event(n: int, aggregate: str, kind: str, payload: Any = None) -> Event:
    return Event(
        str(uuid.uuid4()),
        kind,
        aggregate,
        "OrderCreated",
        payload or {"n": n},
        5.0,
        {"schema_version": 2, "traceparent": "00-t-s-01"},
    )


async def consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[Any] = []

    async def fetched() -> bool:
        batch = await consumer.getmany(timeout_ms=250)
        got.extend(m for msgs in batch.values() for m in msgs)
        return len(got) >= count

    try:
        await eventually(fetched, timeout=20, interval=0, message=f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return got


async def test_records_carry_key_headers_and_envelope(kafka_bootstrap: str) -> None:
    kind = f"order{uuid.uuid4().hex[:6]}"
    sink = KafkaSink(kafka_bootstrap, "events.{aggregate}")
    events = [event(1, "a", kind), event(2, "b", kind), event(3, "a", kind)]
    try:
        assert await sink.publish(events) == [None, None, None]
    finally:
        await sink.stop()
    records = await consume(kafka_bootstrap, f"events.{kind}", 3)
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(json.loads(r.value)["payload"]["n"])
    assert by_key == {b"a": [1, 3], b"b": [2]}
    first = next(r for r in records if json.loads(r.value)["id"] == events[0].id)
    headers = {k: v for k, v in first.headers}
    assert headers == {
        "id": events[0].id.encode(),
        "type": b"OrderCreated",
        "aggregatetype": kind.encode(),
        "schema_version": b"2",
        "traceparent": b"00-t-s-01",
    }
    value = json.loads(first.value)
    assert value == json.loads(envelope(events[0]))
    assert value["schema_version"] == 2 and value["aggregateid"] == "a"


async def test_too_large_record_is_refused_and_others_go(kafka_bootstrap: str) -> None:
    kind = f"order{uuid.uuid4().hex[:6]}"
    sink = KafkaSink(kafka_bootstrap, max_record_bytes=2000)
    try:
        results = await sink.publish(
            [event(1, "a", kind, {"blob": "x" * 5000}), event(2, "b", kind)]
        )
    finally:
        await sink.stop()
    assert isinstance(results[0], PublishError) and not results[0].retriable
    assert "exceeds" in str(results[0])
    assert results[1] is None


async def test_unreachable_broker_is_retriable() -> None:
    sink = KafkaSink(f"127.0.0.1:{free_port()}", request_timeout=1.0)
    try:
        await sink.publish([event(1, "a", "order")])
    except BrokerUnavailable as exc:
        assert exc.retriable
    else:
        raise AssertionError("expected BrokerUnavailable")
    finally:
        await sink.stop()


def test_topic_template() -> None:
    e = event(1, "a", "order")
    assert topic_for("events.{aggregate}", e) == "events.order"
    assert topic_for("{aggregate}.{type}", e) == "order.OrderCreated"


def test_partitions_are_aiokafkas_with_the_key_hashes_remembered(monkeypatch: Any) -> None:
    monkeypatch.setattr(kafka_sink, "CACHED_KEYS", 100)
    hashes: dict[bytes, int] = {}
    for partitions in ([0], [0, 1, 2], list(range(7))):
        for n in range(300):
            key = f"aggregate-{n}".encode()
            assert partition_for(key, partitions, hashes) == DefaultPartitioner()(
                key, partitions, partitions
            )
            assert len(hashes) <= 100  # bounded: starts over when full


def test_record_headers_and_the_spliced_envelope_match_the_plain_ones() -> None:
    e = event(1, 'a "quoted" \u00e9', "order")
    assert record_headers(e) == [
        ("id", e.id.encode()),
        ("type", b"OrderCreated"),
        ("aggregatetype", b"order"),
        ("schema_version", b"2"),
        ("traceparent", b"00-t-s-01"),
    ]
    spliced = envelope_from_text(e, json.dumps(e.payload), json.dumps(e.headers))
    assert json.loads(spliced) == json.loads(envelope(e))


async def test_a_key_spread_over_several_record_batches_stays_in_order(
    kafka_bootstrap: str,
) -> None:
    kind = f"order{uuid.uuid4().hex[:6]}"
    sink = KafkaSink(kafka_bootstrap, "events.{aggregate}")
    # 600 records of ~2 KiB for one key: more than one 256 KiB record batch
    events = [event(n, "a", kind, {"n": n, "pad": "x" * 2000}) for n in range(600)]
    events.insert(300, event(9999, "b", kind))
    try:
        sending = await sink.send(events)
        assert len({id(f) for _, f in sending.futures}) > 2  # really several batches
        assert await sink.collect(sending) == [None] * len(events)
    finally:
        await sink.stop()
    records = await consume(kafka_bootstrap, f"events.{kind}", len(events))
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(json.loads(r.value)["payload"]["n"])
    assert by_key == {b"a": list(range(600)), b"b": [9999]}
