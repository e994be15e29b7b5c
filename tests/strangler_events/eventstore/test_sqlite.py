"""The SQLite event store beyond the contract: one writer at a time, so positions
commit in order (a held transaction makes the next writer wait, it does not overtake);
and error translation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strangler_events.eventstore.port import AppendResult, EventStoreError, NewEvent
from strangler_events.eventstore.sqlite import SqliteEventStore
from tests.eventually import eventually


async def test_a_held_writer_makes_the_next_one_wait_so_positions_commit_in_order(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/e.db"
    release, entered = asyncio.Event(), asyncio.Event()

    async def hold(stream: str, result: AppendResult) -> None:
        entered.set()
        await release.wait()

    slow_store = SqliteEventStore(url, before_commit=hold)
    other, reader = SqliteEventStore(url), SqliteEventStore(url)
    await slow_store.init()
    slow = asyncio.ensure_future(slow_store.append("slow-1", [NewEvent("A", {})]))
    try:
        await eventually(entered.is_set)
        fast = asyncio.ensure_future(other.append("fast-1", [NewEvent("B", {})]))
        assert await reader.read_all() == []  # nothing committed yet
        assert not fast.done()  # waiting for the write lock, not overtaking
        release.set()
        slowed, quick = await slow, await fast
        assert slowed.last_position < quick.last_position
        assert [e.type for e in await reader.read_all()] == ["A", "B"]
        assert [e.position for e in await reader.read_all()] == [1, 2]  # dense here
    finally:
        release.set()
        await asyncio.gather(slow, return_exceptions=True)
        for s in (slow_store, other, reader):
            await s.close()


async def test_using_the_store_before_init_names_the_missing_step(tmp_path: Path) -> None:
    store = SqliteEventStore(f"sqlite:///{tmp_path}/e.db")
    try:
        with pytest.raises(EventStoreError, match="call init\\(\\) first"):
            await store.read_all()
        with pytest.raises(EventStoreError, match="call init\\(\\) first"):
            await store.load_snapshot("order-1")
    finally:
        await store.close()


async def test_an_unusable_file_is_an_event_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    store = SqliteEventStore(f"sqlite:///{tmp_path}/dir.db")
    try:
        with pytest.raises(EventStoreError, match="SQLite event store error"):
            await store.init()
    finally:
        await store.close()


def test_a_url_that_is_not_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="expected sqlite:///PATH"):
        SqliteEventStore("postgresql://x/y")
