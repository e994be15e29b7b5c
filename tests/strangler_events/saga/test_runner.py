"""The saga runner on the real broker and PostgreSQL: an instance started and completed
from events, with its metrics; a deadline set before a restart fires after it; events
for no instance counted, or dead-lettered, by the saga's policy."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.capture.outbox import open_store
from gateway.tasks import spawn
from strangler_events.database.factory import open_database
from strangler_events.dlq import dead_letters
from strangler_events.envelope import Event
from strangler_events.saga.definition import Command, SagaDefinition, Step
from strangler_events.saga.instance import Decision, Instance
from strangler_events.saga.runner import SagaRunner, topics_for
from tests.eventually import eventually
from tests.strangler_events.support import publish

pytestmark = pytest.mark.postgres


def saga(category: str, timeout: float | None = None, unmatched: str = "count") -> SagaDefinition:
    return SagaDefinition(
        name=f"s{category}",
        start="Go",
        key="id",
        steps=(Step("a", Command("DoA", "svc.commands"), ("ADone",), ("AFailed",), timeout),),
        listens_to=(category,),
        unmatched=unmatched,
    )


def ev(kind: str, ident: str) -> Event:
    return Event(str(uuid.uuid4()), kind, "x", ident, {"id": ident})


@pytest.fixture
async def url(pg_database: str) -> AsyncIterator[str]:
    box = open_store(pg_database)
    await box.init()
    await box.close()
    yield pg_database


class Running:
    def __init__(self, runner: SagaRunner) -> None:
        self.runner = runner
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SagaRunner:
        await self.runner.start()
        self.task = spawn(self.runner.run(), name="test-saga-runner")
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 20)


async def state(runner: SagaRunner, ident: str) -> Instance | None:
    found = await runner.store.get(ident)
    return found[0] if found else None


async def test_events_drive_an_instance_to_completion_with_metrics(
    url: str, kafka_bootstrap: str
) -> None:
    category = f"t{uuid.uuid4().hex[:8]}"
    d = saga(category)
    (topic,) = topics_for(d)
    database = open_database(url)
    try:
        async with Running(SagaRunner(d, database, kafka_bootstrap, poll=0.05)) as runner:
            await publish(kafka_bootstrap, topic, [ev("Go", "1")])
            running = await eventually(lambda: state(runner, "1"), timeout=30)
            assert running.state == "running"
            (row,) = await open_store(url).pending(10)
            assert (row.event.type, row.event.aggregatetype) == ("DoA", "svc.commands")
            await publish(kafka_bootstrap, topic, [ev("ADone", "1"), ev("Go", "1")])

            async def completed() -> bool:
                inst = await state(runner, "1")
                return inst is not None and inst.state == "completed"

            await eventually(completed, timeout=30)
            get = runner.metrics.registry.get_sample_value
            labels = {"saga": d.name}
            await eventually(
                lambda: get(
                    "strangler_saga_unmatched_total", labels | {"reason": "duplicate start"}
                )
            )
            assert get("strangler_saga_started_total", labels) == 1.0
            assert get("strangler_saga_completed_total", labels) == 1.0
            assert get("strangler_saga_step_seconds_count", labels | {"step": "a"}) == 1.0
            await runner.refresh_gauges()
            assert get("strangler_saga_instances", labels | {"state": "completed"}) == 1.0
    finally:
        await database.close()


async def test_a_deadline_set_before_a_restart_fires_after_it(
    url: str, kafka_bootstrap: str
) -> None:
    category = f"t{uuid.uuid4().hex[:8]}"
    d = saga(category, timeout=1.0)
    (topic,) = topics_for(d)
    database = open_database(url)
    try:
        async with Running(SagaRunner(d, database, kafka_bootstrap, poll=3600)) as first:
            await publish(kafka_bootstrap, topic, [ev("Go", "1")])
            inst = await eventually(lambda: state(first, "1"), timeout=30)
        deadline = inst.deadline
        assert deadline is not None
        await eventually(lambda: time.time() > deadline + 0.1, timeout=5)
        still = await state(first, "1")
        assert still is not None and still.state == "running"  # nobody fired it while down
        async with Running(SagaRunner(d, database, kafka_bootstrap, poll=0.05)) as second:

            async def compensated() -> Instance | None:
                found = await state(second, "1")
                return found if found is not None and found.state == "compensated" else None

            done = await eventually(compensated, timeout=30)
        assert [e["kind"] for e in done.timeline][-3:] == ["timeout", "failed", "compensated"]
        assert done.reason == "step a timed out after 1 attempt(s)"
    finally:
        await database.close()


@pytest.mark.parametrize("policy", ["count", "dead-letter"])
async def test_an_event_for_no_instance_is_counted_or_dead_lettered(
    url: str, kafka_bootstrap: str, policy: str
) -> None:
    category = f"t{uuid.uuid4().hex[:8]}"
    d = saga(category, unmatched=policy)
    (topic,) = topics_for(d)
    orphan = ev("ADone", "nobody")
    database = open_database(url)
    try:
        runner = SagaRunner(d, database, kafka_bootstrap, delays=(0.01,))
        async with Running(runner):
            await publish(kafka_bootstrap, topic, [orphan])
            labels = {"saga": d.name, "reason": "no instance"}
            get = runner.metrics.registry.get_sample_value
            await eventually(lambda: get("strangler_saga_unmatched_total", labels), timeout=30)
            if policy == "dead-letter":

                async def letter() -> bool:
                    letters = await dead_letters(kafka_bootstrap, runner.consumer.dead_letter_topic)
                    return any(x.event_id == orphan.id for x in letters)

                await eventually(letter, timeout=30)
            dead = runner.consumer.metrics.registry.get_sample_value(
                "strangler_consumer_dead_lettered_total",
                {"consumer": runner.consumer.group, "type": "ADone"},
            )
            assert dead == (1.0 if policy == "dead-letter" else 0.0)
    finally:
        await database.close()


async def test_a_batch_rolled_back_and_redone_one_by_one_counts_each_instance_once(
    url: str, kafka_bootstrap: str
) -> None:
    """Three starts fetched in one batch; the third's transition fails once, so the batch
    rolls back and is redone event by event: the metrics count what committed, once."""
    category = f"t{uuid.uuid4().hex[:8]}"
    d = saga(category)
    (topic,) = topics_for(d)
    seen: list[str] = []

    async def fail_third_once(decision: Decision) -> None:
        assert decision.instance is not None
        seen.append(decision.instance.id)
        if decision.instance.id == "3" and seen.count("3") == 1:
            raise RuntimeError("the third start fails once")

    # one key: one partition, published before the runner starts, so fetched together
    starts = [Event(str(uuid.uuid4()), "Go", "x", "k", {"id": n}) for n in ("1", "2", "3")]
    await publish(kafka_bootstrap, topic, list(starts))
    database = open_database(url)
    try:
        runner = SagaRunner(
            d, database, kafka_bootstrap, delays=(0.01,), before_commit=fail_third_once
        )
        async with Running(runner):
            get = runner.metrics.registry.get_sample_value
            labels = {"saga": d.name}
            await eventually(lambda: get("strangler_saga_started_total", labels) == 3.0, timeout=30)
            assert seen == ["1", "2", "3", "1", "2", "3"]  # the batch, then one by one
            assert get("strangler_saga_started_total", labels) == 3.0
    finally:
        await database.close()
