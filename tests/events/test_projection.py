"""Projections on the real broker: kept up to date, rebuilt from the start, one aggregate
re-projected from its events."""

from __future__ import annotations

from pathlib import Path

from events.database import Tx, open_database
from events.envelope import Event
from events.projection import Projection
from tests.events.support import event, publish, run_until, topic

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


async def test_kept_rebuilt_and_reprojected(kafka_bootstrap: str, tmp_path: Path) -> None:
    t = topic()
    projection = Projection(
        name=f"totals-{t}",
        database=open_database(f"sqlite:///{tmp_path}/p.db"),
        schema=SCHEMA,
        reset_sql=["DELETE FROM totals"],
        forget_sql=["DELETE FROM totals WHERE account = ?"],
        handlers={"Deposited": add},
    )
    await projection.init()
    await publish(
        kafka_bootstrap, t, [event(n, "Deposited", aggregate=f"a{n % 2}") for n in range(1, 11)]
    )
    consumer = projection.consumer(kafka_bootstrap, [t], delays=(0.01,))
    group = projection.name
    await run_until(consumer, lambda: consumer.metrics.processed.get((group, "Deposited")) == 10)
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
    await run_until(again, lambda: again.metrics.processed.get((group, "Deposited")) == 1)
    assert await totals(projection) == {"a0": want["a0"] + 100, "a1": want["a1"]}
    await projection.database.close()
