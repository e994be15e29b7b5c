"""The reverse sync on the real broker, applying to the real example monolith (a process)
with its inbox on real PostgreSQL: everything applied once, in per-aggregate order, the
legacy system's own events left alone, and a monolith down for 10 s waited out."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from prometheus_client import generate_latest

from gateway.tasks import spawn
from strangler_events.database import open_database
from strangler_events.reverse_sync.runner import ReverseSync, group_of, lag
from tests.eventually import eventually
from tests.strangler_events.reverse_sync.support import (
    Monolith,
    monolith,
    order_events,
    target,
)
from tests.strangler_events.support import publish

DELAYS = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 5.0)  # 26.7 s before a dead letter


async def applied_all(m: Monolith, count: int, timeout: float = 60) -> None:
    def done() -> bool:
        if m.applied() < count:
            raise AssertionError(f"{m.applied()} of {count} changes applied")
        return True

    await eventually(done, timeout=timeout, interval=0.2, message=f"{count} changes applied")


async def test_applies_the_services_events_once_in_order_and_reports_lag(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"rs{uuid.uuid4().hex[:8]}.order"
    events, final = order_events(30, 3, deleted=5)
    captured, _ = order_events(3, 0, first_id=1)  # the monolith's own writes: not sent back
    captured = [e.__class__(**{**e.to_dict(), "metadata": {"source": "gateway"}}) for e in captured]
    await publish(kafka_bootstrap, topic, captured + events, batched=True)
    database = open_database(pg_database)
    with monolith(tmp_path) as m:
        sync = ReverseSync(kafka_bootstrap, [topic], target(m.url), database, delays=DELAYS)
        await sync.start()
        running = spawn(sync.run(), name="reverse-sync-test")
        try:
            await applied_all(m, len(events))
            orders = m.orders()

            async def caught_up() -> bool:
                return (
                    sum(
                        p.lag
                        for p in await lag(
                            kafka_bootstrap, [topic], database, group_of(sync.target)
                        )
                    )
                    == 0
                )

            await eventually(caught_up, timeout=20, interval=0.2, message="no lag")
            metrics = generate_latest(sync.metrics.registry).decode()
        finally:
            await sync.stop()
            await running
    await database.close()
    assert orders == final  # the last state of each order: applied in order, deletes too
    assert m.applied() == len(events)  # each of the service's events once, nothing else
    assert "strangler_consumer_lag{" in metrics


async def test_a_monolith_down_for_10_s_holds_the_events_back_then_they_apply_in_order(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"rs{uuid.uuid4().hex[:8]}.order"
    events, final = order_events(20, 4)
    first, rest = events[:25], events[25:]
    database = open_database(pg_database)
    m = Monolith(tmp_path / "legacy.db")
    m.start()
    sync = ReverseSync(kafka_bootstrap, [topic], target(m.url), database, delays=DELAYS)
    await sync.start()
    running = spawn(sync.run(), name="reverse-sync-test")
    try:
        await publish(kafka_bootstrap, topic, first, batched=True)
        await applied_all(m, len(first))
        m.stop()
        down_at = time.monotonic()
        await publish(kafka_bootstrap, topic, rest, batched=True)
        retried = sync.metrics.retried

        def waited() -> bool:
            tries = sum(
                s.value for f in retried.collect() for s in f.samples if s.name.endswith("_total")
            )
            return tries >= 3 and time.monotonic() - down_at >= 10

        await eventually(waited, timeout=30, interval=0.1, message="10 s down, writes retried")
        assert m.applied() == len(first)  # nothing got through meanwhile
        m.start()
        await applied_all(m, len(events))
        orders = m.orders()
    finally:
        await sync.stop()
        await running
        m.stop()
        await database.close()
    assert orders == final
    assert m.applied() == len(events)
    dead = sum(
        s.value for f in sync.metrics.dead.collect() for s in f.samples if s.name.endswith("_total")
    )
    assert dead == 0
