"""Reading a topic back: all events in order, or one aggregate's."""

from __future__ import annotations

from strangler_events.history import history, records
from tests.strangler_events.support import event, publish, topic


async def test_history_of_a_topic_and_of_one_aggregate(kafka_bootstrap: str) -> None:
    t = topic()
    events = [event(n, aggregate=str(n % 3)) for n in range(12)]
    await publish(kafka_bootstrap, t, [*events, b"not an event"])
    everything = await history(kafka_bootstrap, t)
    assert sorted(e.id for e in everything) == sorted(e.id for e in events)
    one = await history(kafka_bootstrap, t, "1")
    assert [e.id for e in one] == [e.id for e in events if e.aggregateid == "1"]  # in order
    assert len([r async for r in records(kafka_bootstrap, t)]) == 13


async def test_a_topic_that_does_not_exist_is_empty(kafka_bootstrap: str) -> None:
    assert await history(kafka_bootstrap, topic()) == []


async def test_records_sent_in_one_batch_are_all_read(kafka_bootstrap: str) -> None:
    """The relay sends a partition's records as one batch; reading back must not stop at
    the batch's first record (the listed end offset can be the batch's base + 1)."""
    from gateway.capture.kafka_sink import KafkaSink
    from gateway.capture.rules import Event as Captured

    t = topic()
    sink = KafkaSink(kafka_bootstrap, t)
    await sink.start()
    try:
        captured = [
            Captured(
                f"00000000-0000-4000-8000-{n:012d}",
                "order",
                "7",
                "OrderUpdated",
                {"n": n},
                1.0,
                {"schema_version": 1},
            )
            for n in range(10)
        ]
        assert await sink.publish(captured) == [None] * 10
    finally:
        await sink.stop()
    assert [e.payload["n"] for e in await history(kafka_bootstrap, t, "7")] == list(range(10))
