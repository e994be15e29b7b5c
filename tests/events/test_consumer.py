"""ResilientConsumer on the real broker: retries, dead letters, replay without double
effect, upcasting, poison records and events with no handler."""

from __future__ import annotations

import json
from pathlib import Path

from events.consumer import ResilientConsumer, dead_letter_record
from events.database import Tx, open_database
from events.dlq import dead_letters, replay
from events.envelope import Event
from events.upcast import Upcasters
from tests.events.support import event, publish, run_until, topic


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
    await run_until(consumer, lambda: consumer.metrics.processed.get((f"g-{t}", "Thing")) == 1)
    assert calls == [e.id] * 4
    assert consumer.metrics.retried.get((f"g-{t}", "Thing")) == 3
    assert consumer.metrics.dead.get((f"g-{t}", "Thing")) == 0


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
    group = f"g-{t}"
    consumer = quick(kafka_bootstrap, t, {"Thing": handler}, database=database)
    await run_until(
        consumer,
        lambda: (
            consumer.metrics.processed.get((group, "Thing")) == 2
            and consumer.metrics.dead.get((group, "Thing")) == 1
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
    await run_until(again, lambda: again.metrics.processed.get((group, "Thing")) == 2)
    assert sorted(await effects()) == sorted(e.id for e in events)
    assert again.metrics.duplicates.get((group, "Thing")) == 1
    await database.close()


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
            consumer.metrics.dead.get((f"g-{t}", "UserRegistered")) == 1
            and consumer.metrics.dead.get((f"g-{t}", "?")) == 1
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
    assert skip.metrics.unknown.get((f"g-{t}", "Other")) == 1

    t2 = topic()
    await publish(kafka_bootstrap, t2, [event(1, "Other")])
    strict = quick(kafka_bootstrap, t2, {"Thing": handler}, unknown="dead-letter")
    await run_until(strict, lambda: strict.metrics.dead.get((f"g-{t2}", "Other")) == 1)
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
