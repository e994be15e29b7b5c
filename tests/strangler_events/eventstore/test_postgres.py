"""The PostgreSQL event store beyond the contract: gap-free subscriptions under
concurrent writers whose commits are held open and interleaved (with a naive
``position > last`` reader beside it, which does skip events), positions that are
transaction ids, and error translation."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

from strangler_events.eventstore.port import (
    AppendResult,
    EventStoreError,
    NewEvent,
    RecordedEvent,
)
from strangler_events.eventstore.postgres import PostgresEventStore
from tests.eventually import eventually

pytestmark = pytest.mark.postgres

Hook = Callable[[str, AppendResult], Awaitable[None]]


@dataclass
class Naive:
    """The reader PostgreSQL event stores have shipped: ``position > last``, no watermark."""

    conn: asyncpg.Connection
    last: int = 0
    positions: list[int] = field(default_factory=list)

    async def poll(self) -> None:
        rows = await self.conn.fetch(
            "SELECT position FROM strangler_event_store WHERE position > $1"
            " ORDER BY position LIMIT 500",
            self.last,
        )
        for (position,) in rows:
            self.positions.append(position)
            self.last = position


@dataclass
class Subscriber:
    """A catch-up subscription through the store: ``read_all(after_position=last)``."""

    store: PostgresEventStore
    last: int = 0
    events: list[RecordedEvent] = field(default_factory=list)

    async def poll(self) -> None:
        batch = await self.store.read_all(self.last, limit=100)
        self.events += batch
        if batch:
            self.last = batch[-1].position


def hooked_store(url: str, hook: Hook, pool_size: int = 12) -> PostgresEventStore:
    async def call(stream: str, result: AppendResult) -> None:
        await hook(stream, result)

    return PostgresEventStore(url, pool_size=pool_size, before_commit=call)


async def test_an_open_transaction_holds_subscribers_back_and_loses_nothing(
    pg_database: str,
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold(stream: str, result: AppendResult) -> None:
        if stream == "slow-1":
            entered.set()
            await release.wait()

    store = hooked_store(pg_database, hold)
    await store.init()
    conn = await asyncpg.connect(pg_database)
    slow = asyncio.ensure_future(store.append("slow-1", [NewEvent("A", {}), NewEvent("B", {})]))
    try:
        await eventually(entered.is_set)
        fast = await store.append("fast-1", [NewEvent("C", {})])
        naive = Naive(conn)
        await naive.poll()
        assert naive.positions == [fast.last_position]  # it has moved past the slow append
        assert await store.read_all() == []  # the subscriber waits instead
        release.set()
        slowed = await slow
        # Positions are the writing transaction's id, then the index in the append.
        assert slowed.last_position < fast.last_position
        assert slowed.last_position >> 16 < fast.last_position >> 16
        assert slowed.last_position & 0xFFFF == 1 and fast.last_position & 0xFFFF == 0
        events = await store.read_all()
        assert [e.type for e in events] == ["A", "B", "C"]
        await naive.poll()
        assert naive.positions == [fast.last_position]  # the naive reader never sees A, B
    finally:
        release.set()
        await asyncio.gather(slow, return_exceptions=True)
        await conn.close()
        await store.close()


async def test_concurrent_interleaved_writers_a_subscriber_sees_every_event_once(
    pg_database: str,
) -> None:
    """8 writers x 50 appends; writers 0-3 hold two of their transactions open until a
    naive reader has read past them (writer 0's first hold lasts 2 s and until writers
    4-7 have finished); a ticker keeps committing meanwhile.  The subscriber must see every
    event exactly once, each stream in version order; the naive reader misses every
    held event."""
    started = time.monotonic()
    shared_done = asyncio.Event()
    held: list[AppendResult] = []
    naive_box: list[Naive] = []
    subscriber_box: list[Subscriber] = []

    async def hold(stream: str, result: AppendResult) -> None:
        if not (stream.startswith("acct-") and result.first_version in (10, 30)):
            return
        held.append(result)
        naive = naive_box[0]
        await eventually(lambda: naive.last > result.last_position, timeout=10)
        # Held open, the watermark keeps the subscriber below this append.
        assert subscriber_box[0].last < result.last_position
        if stream == "acct-0" and result.first_version == 10:
            # The long one: open for 2 s at least, and until writers 4-7 are all done.
            since = time.monotonic()
            await eventually(
                lambda: shared_done.is_set() and time.monotonic() - since >= 2.0, timeout=10
            )

    store = hooked_store(pg_database, hold)
    await store.init()
    conn = await asyncpg.connect(pg_database)
    naive, subscriber = Naive(conn), Subscriber(store)
    naive_box.append(naive)
    subscriber_box.append(subscriber)
    appended: list[tuple[str, NewEvent]] = []
    stop_polling, stop_ticker = asyncio.Event(), asyncio.Event()

    async def poll() -> None:
        while not stop_polling.is_set():
            await naive.poll()
            await subscriber.poll()
            await asyncio.sleep(0.005)

    async def writer(k: int) -> None:
        for j in range(50):
            stream = f"acct-{k}" if k < 4 else f"cart-{k % 2}"
            batch = [NewEvent("Happened", {"k": k, "j": j, "i": i}) for i in range(1 + j % 3 // 2)]
            await store.append(stream, batch)
            appended.extend((stream, e) for e in batch)

    async def ticker() -> None:
        n = 0
        while not stop_ticker.is_set():
            event = NewEvent("Tick", {"n": n})
            await store.append("tick-1", [event])
            appended.append(("tick-1", event))
            n += 1
            await asyncio.sleep(0.01)

    async def shared_writers() -> None:
        async with asyncio.TaskGroup() as group:
            for k in range(4, 8):
                group.create_task(writer(k))
        shared_done.set()

    async def all_writers() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for k in range(4):
                    group.create_task(writer(k))
                group.create_task(shared_writers())
        finally:
            stop_ticker.set()

    try:
        # A failure anywhere cancels the rest (no held transaction is left waiting).
        async with asyncio.TaskGroup() as group:
            group.create_task(poll())
            group.create_task(ticker())
            await all_writers()
            await eventually(lambda: len(subscriber.events) >= len(appended), timeout=10)
            stop_polling.set()
        await naive.poll()
        await subscriber.poll()  # one more round: nothing extra may arrive
    finally:
        await conn.close()
        await store.close()

    seen = [e.id for e in subscriber.events]
    assert Counter(seen).most_common(1)[0][1] == 1  # exactly once
    assert set(seen) == {e.id for _, e in appended}  # every event
    positions = [e.position for e in subscriber.events]
    assert positions == sorted(positions)
    by_stream: dict[str, list[int]] = {}
    for e in subscriber.events:
        by_stream.setdefault(e.stream, []).append(e.version)
    assert all(v == list(range(1, len(v) + 1)) for v in by_stream.values())
    # The scheme is needed: the naive reader skipped every held append.
    assert len(held) == 8
    missed = {e.position for e in subscriber.events} - set(naive.positions)
    assert {r.last_position for r in held} <= missed
    assert time.monotonic() - started < 15


async def test_an_unreachable_server_is_an_event_store_error() -> None:
    store = PostgresEventStore("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(EventStoreError, match="unreachable"):
            await store.read_all()
    finally:
        await store.close()


async def test_using_the_store_before_init_names_the_missing_step(pg_database: str) -> None:
    store = PostgresEventStore(pg_database)
    try:
        with pytest.raises(EventStoreError, match="call init\\(\\) first"):
            await store.append("order-1", [NewEvent("X", {})])
    finally:
        await store.close()


async def test_concurrent_inits_are_serialised(pg_database: str) -> None:
    stores = [PostgresEventStore(pg_database) for _ in range(4)]
    try:
        await asyncio.gather(*(s.init() for s in stores))
        await stores[0].append("order-1", [NewEvent("X", {})])
        assert await stores[3].stream_version("order-1") == 1
    finally:
        for s in stores:
            await s.close()
