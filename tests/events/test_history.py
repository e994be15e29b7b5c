"""Reading a topic back: all events in order, or one aggregate's."""

from __future__ import annotations

from events.history import history, records
from tests.events.support import event, publish, topic


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
