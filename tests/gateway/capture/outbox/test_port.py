"""The outbox contract, run against every adapter: SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.capture.kafka_sink import envelope
from gateway.capture.outbox import (
    Heartbeat,
    OutboxError,
    OutboxStore,
    OutboxUnavailable,
    RelayState,
    open_store,
)
from gateway.capture.rules import Doubt, Event
from tests.eventually import eventually
from tests.harness import free_port


def event(n: int, aggregate: str = "1") -> Event:
    return Event(
        f"00000000-0000-4000-8000-{n:012d}",
        "order",
        aggregate,
        "OrderCreated",
        {"n": n},
        1_700_000_000.0 + n,
        {"schema_version": 1, "source": "gateway"},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OutboxStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/outbox.db"
    else:
        url = request.getfixturevalue("pg_database")
    s = open_store(url)
    await s.init()
    await s.init()  # idempotent
    try:
        yield s
    finally:
        await s.close()


async def test_append_and_read_in_order(store: OutboxStore) -> None:
    await store.append([event(1), event(2, "2"), event(3)])
    rows = await store.pending(10)
    assert [r.event.id for r in rows] == [event(1).id, event(2).id, event(3).id]
    assert rows[0].seq < rows[1].seq < rows[2].seq
    # Whatever the adapter, the record value the relay publishes is the same.
    assert json.loads(envelope(rows[0].event)) == json.loads(envelope(event(1)))
    assert rows[0].event.headers["schema_version"] == 1


async def test_duplicate_ids_are_ignored(store: OutboxStore) -> None:
    await store.append([event(1)])
    await store.append([event(1), event(2)])
    assert [r.event.id for r in await store.pending(10)] == [event(1).id, event(2).id]


async def test_publish_marks_and_status(store: OutboxStore) -> None:
    await store.append([event(1), event(2)], [Doubt("r1", "orders", "POST", "/x", None, "why")])
    rows = await store.pending(10)
    await store.mark_published([rows[0].seq])
    assert [r.event.id for r in await store.pending(10)] == [event(2).id]
    status = await store.status()
    assert (status.pending, status.published, status.doubts, status.blocked) == (1, 1, 1, 0)
    assert status.oldest_pending_age is not None and status.oldest_pending_age > 0
    doubts = await store.doubts()
    assert [(d.request_id, d.reason) for d in doubts] == [("r1", "why")]


async def test_failed_row_blocks_only_its_aggregate_until_skipped(store: OutboxStore) -> None:
    await store.append([event(1, "a"), event(2, "b"), event(3, "a"), event(4, "b")])
    rows = await store.pending(10)
    await store.mark_failed(rows[0].seq, "record too large")
    assert [r.event.id for r in await store.pending(10)] == [event(2).id, event(4).id]
    blocked = await store.blocked()
    assert [(b.id, b.aggregateid, b.error) for b in blocked] == [
        (event(1).id, "a", "record too large")
    ]
    assert (await store.status()).blocked == 1
    assert await store.skip(event(1).id)
    assert not await store.skip("00000000-0000-4000-8000-999999999999")
    assert [r.event.id for r in await store.pending(10)] == [event(2).id, event(3).id, event(4).id]


async def test_purge_removes_only_old_published_rows(store: OutboxStore) -> None:
    await store.append([event(1), event(2)])
    rows = await store.pending(10)
    await store.mark_published([rows[0].seq])
    assert await store.purge(3600) == 0
    # Once the published row is older than 10 ms, it goes (and only it).
    assert await eventually(lambda: store.purge(0.01), timeout=5) == 1
    assert (await store.status()).published == 0 and (await store.status()).pending == 1


async def test_one_leader_at_a_time(store: OutboxStore) -> None:
    other = open_store(store.url)
    try:
        assert await store.lead("a", 5)
        assert await store.lead("a", 5)  # renewal
        assert not await other.lead("b", 5)
        await store.resign("a")
        assert await other.lead("b", 5)
        assert not await store.lead("a", 5)
    finally:
        await other.resign("b")
        await other.close()


async def test_the_leading_relays_heartbeat_is_read_back_and_removed_on_resign(
    store: OutboxStore,
) -> None:
    assert await store.relay_state() is None  # no relay ever led
    assert await store.lead("a", 5)
    await store.heartbeat(Heartbeat("a", 5.0, 2.0, 10, 0.5, "round failed: broker down", 1.5))
    other = open_store(store.url)  # e.g. `strangler outbox status` in another process
    try:
        state = await other.relay_state()
        assert state is not None and state.beat.holder == "a"
        assert state.beat == Heartbeat("a", 5.0, 2.0, 10, 0.5, "round failed: broker down", 1.5)
        assert 0 <= state.age < 5 and not state.stale
        # each beat replaces the last one, whoever writes it (a new leader after a takeover)
        await store.heartbeat(Heartbeat("a", 5.0, 3.0, 12))
        await store.heartbeat(Heartbeat("b", 5.0, 0.0, 0))
        again = await other.relay_state()
        assert again is not None and again.beat == Heartbeat("b", 5.0, 0.0, 0)
        await store.resign("a")  # not a's beat any more: it stays
        assert await other.relay_state() is not None
        await store.resign("b")
        assert await other.relay_state() is None
    finally:
        await other.close()


async def test_a_heartbeat_older_than_a_few_leases_is_stale(store: OutboxStore) -> None:
    await store.heartbeat(Heartbeat("gone", 0.01, 1.0, 3, 0.2))

    async def stale() -> RelayState | None:
        state = await store.relay_state()
        return state if state is not None and state.stale else None

    found = await eventually(stale, timeout=5, message="the 10 ms lease's heartbeat stale")
    assert found is not None and found.age > 0.03
    shown = found.to_json()
    assert shown["stale"] is True and shown["holder"] == "gone" and shown["published"] == 3
    assert shown["leading_for"] > 1.0 and shown["last_publish_age"] > 0.2


def test_relay_state_json_ages_are_as_of_now() -> None:
    beat = Heartbeat("r1", 5.0, 10.0, 50, 1.0, "event e1 parked: too large", 4.0)
    shown = RelayState(beat, 2.0).to_json()
    assert shown == {
        "holder": "r1",
        "stale": False,
        "heartbeat_age": 2.0,
        "lease": 5.0,
        "leading_for": 12.0,
        "published": 50,
        "rate": 5.0,
        "last_publish_age": 3.0,
        "last_error": "event e1 parked: too large",
        "last_error_age": 6.0,
    }
    fresh = RelayState(Heartbeat("r2", 5.0, 0.0, 0), 15.0).to_json()
    assert (fresh["rate"], fresh["last_publish_age"], fresh["last_error_age"]) == (None, None, None)
    assert fresh["stale"] is False  # 15 s is three 5 s leases: not yet
    assert RelayState(Heartbeat("r2", 5.0, 0.0, 0), 15.1).stale


async def test_wait_for_rows_returns_within_timeout(store: OutboxStore) -> None:
    started = asyncio.get_running_loop().time()
    await store.wait_for_rows(0.2)
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_unreachable_database_is_reported_as_unavailable(tmp_path: Path) -> None:
    store = open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(OutboxUnavailable):
        await store.append([event(1)])
    await store.close()
    bad = open_store(f"sqlite:///{tmp_path}/missing-dir/\0/x.db")
    with pytest.raises(OutboxError):
        await bad.init()
    with pytest.raises(OutboxError, match="unsupported outbox URL"):
        open_store("mysql://x")
