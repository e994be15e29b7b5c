"""Projections on the real broker: kept up to date, rebuilt from the start, one aggregate
re-projected from its events; with ``on_position_mismatch="rebuild"``, a broker that
comes back empty under a running consumer leaves the read model with exactly the
events of the new log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.tasks import spawn
from strangler_events.database import Tx, open_database
from strangler_events.envelope import Event
from strangler_events.inbox import Inbox
from strangler_events.projection import Projection
from tests.eventually import eventually
from tests.harness import Broker
from tests.strangler_events.support import count, event, publish, run_until, topic

SCHEMA = "CREATE TABLE IF NOT EXISTS totals (account TEXT PRIMARY KEY, total INTEGER NOT NULL)"


async def add(e: Event, tx: Tx) -> None:
    await tx.execute(
        "INSERT INTO totals (account, total) VALUES (?, ?) ON CONFLICT (account)"
        " DO UPDATE SET total = totals.total + excluded.total",
        e.aggregateid,
        e.payload["n"],
    )


async def totals(projection: Projection) -> dict[str, int]:
    async with projection.database.transaction() as tx:
        return {a: t for a, t in await tx.fetch("SELECT account, total FROM totals")}


def totals_projection(t: str, tmp_path: Path) -> Projection:
    return Projection(
        name=f"totals-{t}",
        database=open_database(f"sqlite:///{tmp_path}/p.db"),
        schema=SCHEMA,
        reset_sql=["DELETE FROM totals"],
        forget_sql=["DELETE FROM totals WHERE account = ?"],
        handlers={"Deposited": add},
    )


async def test_kept_rebuilt_and_reprojected(kafka_bootstrap: str, tmp_path: Path) -> None:
    t = topic()
    projection = totals_projection(t, tmp_path)
    await projection.init()
    await publish(
        kafka_bootstrap, t, [event(n, "Deposited", aggregate=f"a{n % 2}") for n in range(1, 11)]
    )
    consumer = projection.consumer(kafka_bootstrap, [t], delays=(0.01,))
    assert consumer.group == projection.name
    await run_until(consumer, lambda: count(consumer, "processed", "Deposited") == 10)
    want = {"a0": 2 + 4 + 6 + 8 + 10, "a1": 1 + 3 + 5 + 7 + 9}
    assert await totals(projection) == want

    async with projection.database.transaction() as tx:  # damage the read model
        await tx.execute("UPDATE totals SET total = 0 WHERE account = 'a1'")
    assert await projection.reproject(kafka_bootstrap, t, "a1") == 5
    assert await totals(projection) == want

    async with projection.database.transaction() as tx:
        await tx.execute("DELETE FROM totals")
    assert await projection.rebuild(kafka_bootstrap, [t]) == 10
    assert await totals(projection) == want
    # the position is stored: a restarted consumer applies nothing twice
    again = projection.consumer(kafka_bootstrap, [t], delays=(0.01,))
    await publish(kafka_bootstrap, t, [event(100, "Deposited", aggregate="a0")])
    await run_until(again, lambda: count(again, "processed", "Deposited") == 1)
    assert await totals(projection) == {"a0": want["a0"] + 100, "a1": want["a1"]}
    await projection.database.close()


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A broker of this test's own, to restart empty without disturbing the session's."""
    broker = Broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.kafka
async def test_rebuild_policy_after_the_broker_came_back_empty(
    own_broker: Broker, tmp_path: Path
) -> None:
    t = topic()
    projection = totals_projection(t, tmp_path)
    await projection.init()
    bootstrap = own_broker.bootstrap
    await publish(bootstrap, t, [event(n, "Deposited", aggregate="a") for n in range(1, 6)])
    consumer = projection.consumer(bootstrap, [t], on_position_mismatch="rebuild", delays=(0.01,))
    await consumer.start()
    task = spawn(consumer.run(), name="test-consumer")
    try:
        await eventually(lambda: count(consumer, "processed", "Deposited") == 5, timeout=30)
        assert await totals(projection) == {"a": 15}
        [(_, partition)] = await Inbox(projection.database, projection.name).positions()
        await asyncio.to_thread(own_broker.stop)
        await asyncio.to_thread(own_broker.start)  # the same address, an empty log
        await publish(bootstrap, t, [event(n, "Deposited", aggregate="a") for n in (10, 20, 30)])

        async def rebuilt() -> bool:
            return await totals(projection) == {"a": 10 + 20 + 30}

        await eventually(rebuilt, timeout=60)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
    assert not task.cancelled() and task.exception() is None
    # exactly the new log's events, each once: the old ones went with the old log
    assert count(consumer, "processed", "Deposited") == 8
    assert await totals(projection) == {"a": 60}
    labels = {"consumer": projection.name, "topic": t, "partition": str(partition)}
    mismatches = consumer.metrics.registry.get_sample_value(
        "strangler_consumer_position_mismatches_total", {**labels, "kind": "beyond-end"}
    )
    assert mismatches == 1
    await projection.database.close()
