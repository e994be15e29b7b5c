"""The consumer's batch mode.  Unit: which fetches can go in one transaction
(:func:`plan`).  On the real broker and a real database: a clean batch is handled once
with one stored position; a failing event in the middle of a batch leaves the events
before it committed once, is retried or dead-lettered as without batches, and the events
after it are handled once; a restart resumes right after the last batch."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from strangler_events.batch import plan, timed
from strangler_events.consumer import ResilientConsumer
from strangler_events.database import Database, Tx, open_database
from strangler_events.dlq import dead_letters
from strangler_events.envelope import Event, encode
from strangler_events.inbox import Inbox
from strangler_events.upcast import Upcasters
from tests.strangler_events.support import count, event, publish, run_until, topic


class Record:
    def __init__(self, value: bytes) -> None:
        self.value = value


async def nothing(e: Event, tx: Tx | None) -> None:
    return None


def test_a_fetch_of_known_events_goes_together_with_no_handler_passed_over() -> None:
    a, b = event(1), event(2, kind="Other")
    items = plan([Record(encode(a)), Record(encode(b))], Upcasters(), {"Thing": nothing}, "skip")
    assert items == [(a, nothing), (b, None)]


@pytest.mark.parametrize(
    ("value", "unknown"),
    [(b"not an event", "skip"), (encode(event(2, kind="Other")), "dead-letter")],
)
def test_a_record_to_dead_letter_makes_the_fetch_go_one_at_a_time(
    value: bytes, unknown: str
) -> None:
    records = [Record(encode(event(1))), Record(value)]
    assert plan(records, Upcasters(), {"Thing": nothing}, unknown) is None


async def test_timed_records_each_calls_duration() -> None:
    spent: list[float] = []
    await timed(nothing, spent)(event(1), None)
    await timed(nothing, spent)(event(2), None)
    assert len(spent) == 2 and all(s >= 0 for s in spent)


def test_batch_mode_needs_a_database() -> None:
    with pytest.raises(ValueError, match="batch=True needs a database"):
        ResilientConsumer("127.0.0.1:1", ["t"], "g", {}, batch=True)


class Service:
    """A handler that writes one effect row per call and can fail on chosen events."""

    def __init__(self, database: Database, fail: dict[int, int] | None = None) -> None:
        self.database = database
        self.fail = fail or {}  # event n -> failures left (-1: always)
        self.calls: list[int] = []

    async def handle(self, e: Event, tx: Tx | None) -> None:
        assert tx is not None
        n = int(e.payload["n"])
        self.calls.append(n)
        await tx.execute("INSERT INTO effects (n) VALUES (?)", n)
        left = self.fail.get(n, 0)
        if left != 0:
            self.fail[n] = left - 1 if left > 0 else left
            raise ConnectionError(f"downstream unavailable for {n}")

    async def effects(self) -> list[int]:
        async with self.database.transaction() as tx:
            return [int(r[0]) for r in await tx.fetch("SELECT n FROM effects ORDER BY seq")]

    def consumer(self, bootstrap: str, t: str) -> ResilientConsumer:
        return ResilientConsumer(
            bootstrap,
            [t],
            f"g-{t}",
            {"Thing": self.handle},
            database=self.database,
            delays=(0.01, 0.02, 0.03),
            dead_letter_topic=f"{t}.dead",
            batch=True,
        )


async def service(url: str, fail: dict[int, int] | None = None) -> Service:
    database = open_database(url)
    key = "INTEGER PRIMARY KEY" if url.startswith("sqlite") else "BIGSERIAL PRIMARY KEY"
    await database.script(f"CREATE TABLE IF NOT EXISTS effects (seq {key}, n INTEGER NOT NULL)")
    return Service(database, fail)


async def positions(svc: Service, bootstrap: str, t: str) -> tuple[int, int | None]:
    """The stored position and the group's committed offset (what Kafka holds) of the
    one partition the events went to (they share a key)."""
    [(topic_, partition)] = (stored := await Inbox(svc.database, f"g-{t}").positions())
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"g-{t}")
    await reader.start()
    try:
        offset = await reader.committed(TopicPartition(topic_, partition))
        return stored[(topic_, partition)], None if offset is None else int(offset)
    finally:
        await reader.stop()


async def test_a_clean_batch_is_handled_once_and_a_restart_resumes_after_it(
    kafka_bootstrap: str, url: str
) -> None:
    t, svc = topic(), await service(url)
    await publish(kafka_bootstrap, t, [event(n) for n in range(1, 7)])
    first = svc.consumer(kafka_bootstrap, t)
    await run_until(first, lambda: count(first, "processed", "Thing") == 6)
    assert svc.calls == [1, 2, 3, 4, 5, 6]
    assert await positions(svc, kafka_bootstrap, t) == (6, 6)

    await publish(kafka_bootstrap, t, [event(n) for n in range(7, 10)])
    second = svc.consumer(kafka_bootstrap, t)
    await run_until(second, lambda: count(second, "processed", "Thing") == 3)
    assert svc.calls == list(range(1, 10))  # nothing before the stored position again
    assert await svc.effects() == list(range(1, 10))
    assert await positions(svc, kafka_bootstrap, t) == (9, 9)
    await svc.database.close()


async def test_a_retried_event_in_the_middle_of_a_batch_keeps_every_effect_once(
    kafka_bootstrap: str, url: str
) -> None:
    t, svc = topic(), await service(url, fail={3: 2})  # 3 fails twice, then succeeds
    await publish(kafka_bootstrap, t, [event(n) for n in range(1, 6)])
    consumer = svc.consumer(kafka_bootstrap, t)
    await run_until(consumer, lambda: count(consumer, "processed", "Thing") == 5)
    # the batch ran 1, 2, 3 and rolled back; one at a time: 1, 2, then 3 retried, 4, 5
    assert svc.calls == [1, 2, 3, 1, 2, 3, 3, 4, 5]
    assert await svc.effects() == [1, 2, 3, 4, 5]
    assert count(consumer, "retried", "Thing") == 1  # as without batches: one failure there
    assert count(consumer, "dead_lettered", "Thing") == 0
    assert await positions(svc, kafka_bootstrap, t) == (5, 5)
    await svc.database.close()


async def test_a_dead_lettered_event_in_the_middle_of_a_batch_is_skipped_and_restart_resumes(
    kafka_bootstrap: str, url: str
) -> None:
    t, svc = topic(), await service(url, fail={3: -1})  # 3 always fails
    events = [event(n) for n in range(1, 6)]
    await publish(kafka_bootstrap, t, list(events))
    consumer = svc.consumer(kafka_bootstrap, t)
    await run_until(
        consumer,
        lambda: (
            count(consumer, "processed", "Thing") == 4
            and count(consumer, "dead_lettered", "Thing") == 1
        ),
    )
    assert svc.calls == [1, 2, 3, 1, 2, 3, 3, 3, 3, 4, 5]  # 4 attempts one at a time
    assert await svc.effects() == [1, 2, 4, 5]
    [letter] = await dead_letters(kafka_bootstrap, f"{t}.dead")
    assert letter.event_id == events[2].id and letter.attempts == 4
    assert json.loads(letter.original["value"])["id"] == events[2].id
    assert await positions(svc, kafka_bootstrap, t) == (5, 5)

    svc.calls.clear()  # a restart: nothing of the first five again, the new one once
    await publish(kafka_bootstrap, t, [event(6)])
    again = svc.consumer(kafka_bootstrap, t)
    await run_until(again, lambda: count(again, "processed", "Thing") == 1)
    assert svc.calls == [6]
    assert await svc.effects() == [1, 2, 4, 5, 6]
    await svc.database.close()
