"""ResilientConsumer on the real broker: retries, dead letters, replay without double
effect, upcasting, poison records and events with no handler; a stored position that
no longer fits the log (the broker came back empty) stops it.  Against a fake
consumer: events deleted before they were read (retention) stop it too, and the
``rebuild`` policy clears what it built and starts again from the beginning."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from prometheus_client import CollectorRegistry, generate_latest

from gateway.tasks import spawn
from strangler_events.consumer import (
    ConsumerMetrics,
    Reject,
    ResilientConsumer,
    dead_letter_record,
)
from strangler_events.database import Tx, open_database
from strangler_events.dlq import dead_letters, replay
from strangler_events.envelope import Event
from strangler_events.mismatch import PositionMismatch
from strangler_events.upcast import Upcasters
from tests.eventually import eventually
from tests.harness import Broker
from tests.strangler_events.fake_kafka import FakeKafka
from tests.strangler_events.support import count, event, publish, run_until, topic


def quick(bootstrap: str, t: str, handlers: dict[str, object], **kw: object) -> ResilientConsumer:
    return ResilientConsumer(
        bootstrap,
        [t],
        f"g-{t}",
        handlers,  # type: ignore[arg-type]
        delays=(0.01, 0.02, 0.03),
        dead_letter_topic=f"{t}.dead",
        **kw,  # type: ignore[arg-type]
    )


async def test_a_handler_that_fails_three_times_is_retried_and_processed_once(
    kafka_bootstrap: str,
) -> None:
    t = topic()
    calls: list[str] = []

    async def flaky(e: Event, tx: Tx | None) -> None:
        calls.append(e.id)
        if len(calls) <= 3:
            raise ConnectionError("downstream unavailable")

    e = event(1)
    await publish(kafka_bootstrap, t, [e])
    consumer = quick(kafka_bootstrap, t, {"Thing": flaky})
    await run_until(consumer, lambda: count(consumer, "processed", "Thing") == 1)
    assert calls == [e.id] * 4
    assert count(consumer, "retried", "Thing") == 3
    assert count(consumer, "dead_lettered", "Thing") == 0


async def test_always_failing_event_is_dead_lettered_once_then_replayed_without_double_effect(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    t = topic()
    database = open_database(f"sqlite:///{tmp_path}/svc.db")
    await database.script("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL)")
    broken = {"on": True}

    async def handler(e: Event, tx: Tx | None) -> None:
        assert tx is not None
        await tx.execute("INSERT INTO effects (event_id) VALUES (?)", e.id)
        if broken["on"] and e.payload["n"] == 2:
            raise ValueError("cannot price item 2")

    events = [event(1), event(2), event(3)]
    await publish(kafka_bootstrap, t, list(events))
    consumer = quick(kafka_bootstrap, t, {"Thing": handler}, database=database)
    await run_until(
        consumer,
        lambda: (
            count(consumer, "processed", "Thing") == 2
            and count(consumer, "dead_lettered", "Thing") == 1
        ),
    )
    [letter] = await dead_letters(kafka_bootstrap, f"{t}.dead")
    assert letter.event_id == events[1].id and letter.attempts == 4
    assert letter.error == "ValueError: cannot price item 2"
    assert (
        letter.original["topic"] == t and json.loads(letter.original["value"])["id"] == events[1].id
    )

    async def effects() -> list[str]:
        async with database.transaction() as tx:
            return [r[0] for r in await tx.fetch("SELECT event_id FROM effects ORDER BY event_id")]

    assert sorted(await effects()) == sorted([events[0].id, events[2].id])  # failed: rolled back

    broken["on"] = False  # the fault is fixed: replay, twice (the inbox keeps it to one effect)
    assert await replay(kafka_bootstrap, [letter, letter]) == 2
    again = quick(kafka_bootstrap, t, {"Thing": handler}, database=database)
    await run_until(again, lambda: count(again, "processed", "Thing") == 2)
    assert sorted(await effects()) == sorted(e.id for e in events)
    assert count(again, "duplicates", "Thing") == 1
    await database.close()


async def test_a_rejected_event_is_dead_lettered_at_once_without_retries(
    kafka_bootstrap: str,
) -> None:
    t = topic()
    calls: list[str] = []

    async def refuse(e: Event, tx: Tx | None) -> None:
        calls.append(e.id)
        if e.payload["n"] == 1:
            raise Reject("no saga instance for it")

    events = [event(1), event(2)]
    await publish(kafka_bootstrap, t, list(events))
    consumer = quick(kafka_bootstrap, t, {"Thing": refuse})
    await run_until(consumer, lambda: count(consumer, "processed", "Thing") == 1)
    [letter] = await dead_letters(kafka_bootstrap, f"{t}.dead")
    assert letter.event_id == events[0].id and letter.attempts == 1
    assert letter.error == "Reject: no saga instance for it"
    assert calls == [events[0].id, events[1].id]  # tried once, not retried
    assert count(consumer, "retried", "Thing") == 0


async def test_v1_and_v2_events_reach_the_handler_as_v2(kafka_bootstrap: str) -> None:
    t = topic()
    up = Upcasters()
    up.register("UserRegistered", 1)(lambda p: {**p, "profile": {"name": "Unknown"}})
    seen: list[tuple[int, object]] = []

    async def handler(e: Event, tx: Tx | None) -> None:
        seen.append((e.schema_version, e.payload))

    v1 = event(1, "UserRegistered", version=1)
    v2 = event(2, "UserRegistered", version=2, profile={"name": "Ann"})
    v3 = event(3, "UserRegistered", version=3)
    await publish(kafka_bootstrap, t, [v1, v2, v3, b"not json"])
    consumer = quick(kafka_bootstrap, t, {"UserRegistered": handler}, upcasters=up)
    await run_until(
        consumer,
        lambda: (
            count(consumer, "dead_lettered", "UserRegistered") == 1
            and count(consumer, "dead_lettered", "?") == 1
        ),
    )
    assert seen == [
        (2, {"n": 1, "profile": {"name": "Unknown"}}),
        (2, {"n": 2, "profile": {"name": "Ann"}}),
    ]
    letters = await dead_letters(kafka_bootstrap, f"{t}.dead")
    assert [x.error for x in letters] == [
        "TooNew: UserRegistered schema_version 3 is newer than this consumer knows (up to 2)",
        "BadEvent: not JSON: Expecting value: line 1 column 1 (char 0)",
    ]
    assert letters[0].attempts == 0


async def test_events_with_no_handler_are_skipped_or_dead_lettered(kafka_bootstrap: str) -> None:
    t = topic()
    handled: list[str] = []

    async def handler(e: Event, tx: Tx | None) -> None:
        handled.append(e.type)

    await publish(kafka_bootstrap, t, [event(1, "Other"), event(2, "Thing")])
    skip = quick(kafka_bootstrap, t, {"Thing": handler})
    await run_until(skip, lambda: handled == ["Thing"])
    assert count(skip, "unknown", "Other") == 1

    t2 = topic()
    await publish(kafka_bootstrap, t2, [event(1, "Other")])
    strict = quick(kafka_bootstrap, t2, {"Thing": handler}, unknown="dead-letter")
    await run_until(strict, lambda: count(strict, "dead_lettered", "Other") == 1)
    [letter] = await dead_letters(kafka_bootstrap, f"{t2}.dead")
    assert letter.error == "no handler for Other"


def test_dead_letter_record_shape() -> None:
    class Record:
        topic, partition, offset = "t", 3, 17
        key, value, headers = b"k", b"\xffraw", [("id", b"1")]

    body = dead_letter_record(Record(), "g", "boom", 4, None)
    assert body["event_id"] == "t:3:17" and body["event_type"] is None
    assert body["original"]["key"] == "k" and body["original"]["headers"] == [["id", "1"]]
    assert body["attempts"] == 4 and body["error"] == "boom"


def test_metrics_have_a_registry_each_unless_one_is_given() -> None:
    a, b = ConsumerMetrics(), ConsumerMetrics()
    assert a.registry is not b.registry  # two consumers in one process do not collide
    shared = CollectorRegistry()
    metrics = ConsumerMetrics(shared)
    assert metrics.registry is shared
    metrics.processed.labels("g", "Thing").inc()
    metrics.dead.labels("g", "?").inc(2)
    metrics.duration.labels("g", "Thing").observe(0.003)
    metrics.lag.labels("g", "t", "0").set(7)
    sample = shared.get_sample_value
    assert sample("strangler_consumer_processed_total", {"consumer": "g", "type": "Thing"}) == 1
    assert sample("strangler_consumer_dead_lettered_total", {"consumer": "g", "type": "?"}) == 2
    assert sample("strangler_consumer_lag", {"consumer": "g", "topic": "t", "partition": "0"}) == 7
    labels = {"consumer": "g", "type": "Thing"}
    assert sample("strangler_consumer_handler_seconds_bucket", {**labels, "le": "0.005"}) == 1
    assert sample("strangler_consumer_handler_seconds_bucket", {**labels, "le": "0.001"}) == 0
    text = generate_latest(shared).decode()
    for name in ("processed", "duplicates", "retried", "dead_lettered", "unknown"):
        assert f"# TYPE strangler_consumer_{name}_total counter" in text
    assert "# TYPE strangler_consumer_handler_seconds histogram" in text
    assert "# TYPE strangler_consumer_lag gauge" in text


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A broker of this test's own, to restart empty without disturbing the session's."""
    broker = Broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def mismatches(consumer: ResilientConsumer, topic: str, partition: int, kind: str) -> float:
    labels = {"consumer": consumer.group, "topic": topic, "partition": str(partition)}
    value = consumer.metrics.registry.get_sample_value(
        "strangler_consumer_position_mismatches_total", {**labels, "kind": kind}
    )
    return value or 0.0


async def run_until_it_stops(consumer: ResilientConsumer, timeout: float = 30.0) -> BaseException:
    """Run ``consumer`` until :meth:`run` ends by itself; what it raised."""
    await consumer.start()
    task = spawn(consumer.run(), name="test-consumer")
    try:
        await eventually(task.done, timeout=timeout, message="the consumer to stop by itself")
    finally:
        await consumer.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
    error = task.exception()
    assert error is not None, "run() returned without an error"
    return error


@pytest.mark.kafka
async def test_a_stored_position_beyond_an_empty_brokers_log_stops_the_consumer(
    own_broker: Broker, tmp_path: Path
) -> None:
    t = topic()
    database = open_database(f"sqlite:///{tmp_path}/svc.db")
    seen: list[int] = []

    async def handler(e: Event, tx: Tx | None) -> None:
        seen.append(e.payload["n"])

    bootstrap = own_broker.bootstrap
    await publish(bootstrap, t, [event(n, aggregate="a") for n in range(1, 6)])
    first = quick(bootstrap, t, {"Thing": handler}, database=database)
    await run_until(first, lambda: len(seen) == 5)
    [((_, partition), stored)] = (await database_positions(first)).items()
    assert stored == 5

    own_broker.stop()
    own_broker.start()  # the same address, an empty log
    await publish(bootstrap, t, [event(n, aggregate="a") for n in range(6, 9)])
    again = quick(bootstrap, t, {"Thing": handler}, database=database)
    error = await run_until_it_stops(again)

    assert isinstance(error, PositionMismatch)
    assert str(error) == (
        f"stored position 5 for {t}[{partition}] is beyond the log end 3 (log start 0): "
        "the topic was recreated or truncated; rebuild the projection (policy 'rebuild') "
        "or reset the stored positions"
    )
    assert seen == [1, 2, 3, 4, 5]  # nothing of the new log was skipped, or applied
    assert await database_positions(again) == {(t, partition): 5}
    assert mismatches(again, t, partition, "beyond-end") == 1
    await database.close()


async def database_positions(consumer: ResilientConsumer) -> dict[tuple[str, int], int]:
    assert consumer.inbox is not None
    return await consumer.inbox.positions()


TP = TopicPartition("events.order", 0)


async def faked(tmp_path: Path, **options: object) -> tuple[ResilientConsumer, FakeKafka]:
    """A consumer with an inbox whose stored position for TP is 4, on a fake Kafka whose
    log for TP runs from 10 to 20 (events 4 to 9 were deleted unread)."""
    database = open_database(f"sqlite:///{tmp_path}/fake.db")
    consumer = ResilientConsumer(
        "127.0.0.1:1",
        [TP.topic],
        "g",
        {},
        database=database,
        **options,  # type: ignore[arg-type]
    )
    assert consumer.inbox is not None
    await consumer.inbox.init()
    await consumer.inbox.skip((TP.topic, TP.partition, 4))
    kafka = FakeKafka({TP: (10, 20)})
    consumer._consumer = kafka
    return consumer, kafka


async def test_events_deleted_before_they_were_read_stop_the_consumer(tmp_path: Path) -> None:
    consumer, kafka = await faked(tmp_path)
    await consumer._resume([TP])  # what the rebalance listener does on assignment
    with pytest.raises(PositionMismatch, match=r"stored position 4 for events.order\[0\] is below"):
        await consumer.run()
    assert kafka.sought == {} and kafka.paused() == {TP}
    assert mismatches(consumer, TP.topic, 0, "below-start") == 1
    assert consumer.inbox is not None and await consumer.inbox.positions() == {(TP.topic, 0): 4}
    await consumer.inbox.database.close()


async def test_an_out_of_range_fetch_stops_the_consumer_with_the_logs_offsets(
    tmp_path: Path,
) -> None:
    consumer, kafka = await faked(tmp_path)
    kafka.errors.append(OffsetOutOfRangeError({TP: 4}))  # Kafka's answer at run time
    with pytest.raises(PositionMismatch) as caught:
        await consumer.run()
    assert (caught.value.start, caught.value.end, caught.value.kind) == (10, 20, "below-start")
    assert consumer.inbox is not None
    await consumer.inbox.database.close()


async def test_the_rebuild_policy_clears_what_was_built_and_starts_from_the_beginning(
    tmp_path: Path,
) -> None:
    cleared: list[bool] = []

    async def reset(tx: Tx | None) -> None:
        assert tx is not None  # in the transaction that forgets the inbox
        cleared.append(True)

    consumer, kafka = await faked(tmp_path, on_position_mismatch="rebuild", reset=reset)
    assert consumer.inbox is not None
    async with consumer.inbox.database.transaction() as tx:
        await tx.execute(
            "INSERT INTO strangler_inbox (consumer, event_id, processed_at) VALUES ('g', 'e1', 0)"
        )
    await consumer._resume([TP])
    task = spawn(consumer.run(), name="test-consumer")
    try:
        await eventually(lambda: kafka.sought == {TP: 10}, message="a seek to the log start")
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
    assert cleared == [True] and kafka.paused() == set()
    assert await consumer.inbox.positions() == {}
    async with consumer.inbox.database.transaction() as tx:
        assert await tx.fetch("SELECT event_id FROM strangler_inbox") == []
    assert mismatches(consumer, TP.topic, 0, "below-start") == 1
    assert consumer.guard.found == []
    await consumer.inbox.database.close()


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="on_position_mismatch= must be 'stop' or 'rebuild'"):
        ResilientConsumer("127.0.0.1:1", ["t"], "g", {}, on_position_mismatch="skip")
