"""The repository and the command handler on the real event stores (SQLite and
PostgreSQL): load = snapshot + later events, save with the expected version, snapshots
every N events and never trusted blindly, bounded retries on a concurrent write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

import strangler_events.repository
from strangler_events.aggregate import (
    Aggregate,
    DomainEvent,
    EventDataError,
    UnknownEvent,
    applies,
    command,
)
from strangler_events.eventstore.factory import open_event_store
from strangler_events.eventstore.port import (
    ANY,
    AppendResult,
    EventStore,
    EventStoreError,
    Expected,
    NewEvent,
    OutboxSpec,
    WrongExpectedVersion,
)
from strangler_events.repository import CommandConflict, Repository, handle
from strangler_events.testing import assert_events
from strangler_events.upcast import Upcasters


@dataclass(frozen=True)
class Counted(DomainEvent):
    schema_version = 2
    n: int


class Tally(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.total = 0
        self.entries = 0

    @command
    def add(self, *ns: int) -> list[DomainEvent]:
        if any(n < 1 for n in ns):
            raise ValueError(f"each n must be at least 1, got {list(ns)}")
        return [Counted(n) for n in ns]

    @command
    def add_up_to(self, limit: int, n: int) -> list[DomainEvent]:
        return [Counted(n)] if self.total + n <= limit else []

    @applies(Counted)
    def _counted(self, event: Counted) -> None:
        self.total += event.n
        self.entries += 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    url = (
        f"sqlite:///{tmp_path}/events.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    events = open_event_store(url)
    await events.init()
    try:
        yield events
    finally:
        await events.close()


class Meddling:
    """The real store, with another writer slipping in before the next ``conflicts``
    appends, a reply lost after ``lose_replies`` appends, or failing snapshot writes."""

    def __init__(self, inner: EventStore, conflicts: int = 0, lose_replies: int = 0) -> None:
        self.inner = inner
        self.conflicts = conflicts
        self.lose_replies = lose_replies
        self.fail_snapshots = False
        self.appends = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected: Expected = ANY,
        outbox: OutboxSpec | None = None,
    ) -> AppendResult:
        self.appends += 1
        if self.conflicts:
            self.conflicts -= 1
            await self.inner.append(stream, [NewEvent("Counted", {"n": 100}, schema_version=2)])
        result = await self.inner.append(stream, events, expected=expected, outbox=outbox)
        if self.lose_replies:
            self.lose_replies -= 1
            raise EventStoreError("connection lost before the reply")
        return result

    async def save_snapshot(
        self, stream: str, version: int, schema_version: int, state: dict[str, Any]
    ) -> None:
        if self.fail_snapshots:
            raise EventStoreError("snapshot table is read-only")
        await self.inner.save_snapshot(stream, version, schema_version, state)


def tallies(store: EventStore | Meddling, **options: Any) -> Repository[Tally]:
    return Repository(cast(EventStore, store), Tally, "tally", **options)


async def test_a_new_id_loads_empty_and_saving_nothing_does_nothing(store: EventStore) -> None:
    repo = tallies(store)
    tally = await repo.load("t-1")
    assert (tally.id, tally.version, tally.total) == ("t-1", 0, 0)
    assert await repo.save(tally) is None
    assert await store.stream_version("tally-t-1") == 0


async def test_save_appends_the_pending_events_and_load_replays_them(store: EventStore) -> None:
    repo = tallies(store)
    tally = await repo.load("t-1")
    tally.add(2, 3)
    ids = [p.id for p in tally.pending_events]
    result = await repo.save(tally, metadata={"correlation_id": "c-9"})
    assert result is not None and (result.first_version, result.last_version) == (1, 2)
    assert (tally.version, tally.committed_version, tally.pending_events) == (2, 2, ())

    stored = await store.read_stream("tally-t-1")
    assert_events(
        stored,
        [
            {"stream": "tally-t-1", "version": 1, "type": "Counted", "schema_version": 2,
             "data": {"n": 2}, "metadata": {"correlation_id": "c-9"}},
            {"stream": "tally-t-1", "version": 2, "type": "Counted", "data": {"n": 3}},
        ],
    )  # fmt: skip
    assert [e.id for e in stored] == ids
    again = await repo.load("t-1")
    assert (again.version, again.total, again.entries) == (2, 5, 2)


async def test_a_stale_copy_is_refused_by_default(store: EventStore) -> None:
    repo = tallies(store)
    first = await repo.load("t-1")
    first.add(1)
    await repo.save(first)
    mine, theirs = await repo.load("t-1"), await repo.load("t-1")
    theirs.add(5)
    await repo.save(theirs)
    mine.add(7)
    with pytest.raises(WrongExpectedVersion) as caught:
        await repo.save(mine)
    assert (caught.value.stream, caught.value.expected, caught.value.actual) == ("tally-t-1", 1, 2)
    assert (await repo.load("t-1")).total == 6
    assert len(mine.pending_events) == 1  # still pending: nothing was stored


async def test_an_explicit_expected_version(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tallies(store, snapshot_every=1)
    tally = await repo.load("t-1")
    tally.add(1)
    with pytest.raises(WrongExpectedVersion):
        await repo.save(tally, expected_version=3)
    stale = await repo.load("t-1")
    await repo.save(tally)
    stale.add(10)
    with caplog.at_level(logging.WARNING, logger="strangler.events.repository"):
        await repo.save(stale, expected_version=ANY)  # others wrote: no check, no snapshot
    assert "saved at version 2, the aggregate assumed 1; reload it before reuse" in caplog.text
    snapshot = await store.load_snapshot("tally-t-1")
    assert snapshot is not None and (snapshot.version, snapshot.state["total"]) == (1, 1)
    assert (await repo.load("t-1")).total == 11


async def test_a_retried_save_after_a_lost_reply_stores_the_events_once(
    store: EventStore,
) -> None:
    meddling = Meddling(store, lose_replies=1)
    repo = tallies(meddling)
    tally = await repo.load("t-1")
    tally.add(4, 5)
    with pytest.raises(EventStoreError, match="connection lost"):
        await repo.save(tally)
    result = await repo.save(tally)  # the same event ids at the same expected version
    assert result is not None and result.last_version == 2
    assert [e.data["n"] for e in await store.read_stream("tally-t-1")] == [4, 5]


async def test_snapshots_are_written_when_a_save_crosses_a_multiple(store: EventStore) -> None:
    repo = tallies(store, snapshot_every=3)
    taken = []
    for batch in ([1, 1], [1, 1], [1], [1], [1, 1, 1, 1]):
        tally = await repo.load("t-1")
        tally.add(*batch)
        await repo.save(tally)
        snapshot = await store.load_snapshot("tally-t-1")
        taken.append(None if snapshot is None else (snapshot.version, snapshot.state))
    assert taken == [
        None,
        (4, {"total": 4, "entries": 4}),
        (4, {"total": 4, "entries": 4}),
        (6, {"total": 6, "entries": 6}),
        (10, {"total": 10, "entries": 10}),
    ]
    snapshot = await store.load_snapshot("tally-t-1")
    assert snapshot is not None and snapshot.schema_version == Tally.snapshot_schema_version


async def test_load_starts_from_the_snapshot_and_reads_only_later_events(
    store: EventStore,
) -> None:
    repo = tallies(store, snapshot_every=100)
    tally = await repo.load("t-1")
    tally.add(1, 2, 3)
    await repo.save(tally)
    # A snapshot the events would not give: only trusted because its schema matches.
    await store.save_snapshot("tally-t-1", 2, 1, {"total": 1000, "entries": 2})
    loaded = await repo.load("t-1")
    assert (loaded.version, loaded.total, loaded.entries) == (3, 1003, 3)
    assert (await tallies(store).load("t-1")).total == 6  # no snapshot_every: not read


async def test_a_snapshot_of_another_schema_version_is_ignored(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tallies(store, snapshot_every=100)
    tally = await repo.load("t-1")
    tally.add(1, 2, 3)
    await repo.save(tally)
    await store.save_snapshot("tally-t-1", 3, 7, {"sum": "not this shape"})
    with caplog.at_level(logging.INFO, logger="strangler.events.repository"):
        loaded = await repo.load("t-1")
    assert (loaded.version, loaded.total, loaded.entries) == (3, 6, 3)
    assert "ignoring the snapshot at version 3: schema version 7, expected 1" in caplog.text


async def test_a_snapshot_that_does_not_fit_is_ignored(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tallies(store, snapshot_every=100)
    tally = await repo.load("t-1")
    tally.add(1, 2)
    await repo.save(tally)
    await store.save_snapshot("tally-t-1", 2, 1, {"total": 99})
    with caplog.at_level(logging.WARNING, logger="strangler.events.repository"):
        loaded = await repo.load("t-1")
    assert (loaded.version, loaded.total) == (2, 3)
    assert "ignoring the snapshot: Tally snapshot of 't-1' at version 2 does not fit" in (
        caplog.text
    )


async def test_a_failed_snapshot_write_does_not_fail_the_save(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    meddling = Meddling(store)
    meddling.fail_snapshots = True
    repo = tallies(meddling, snapshot_every=1)
    tally = await repo.load("t-1")
    tally.add(1)
    with caplog.at_level(logging.WARNING, logger="strangler.events.repository"):
        assert await repo.save(tally) is not None
    assert "tally-t-1: snapshot at 1 not written: snapshot table is read-only" in caplog.text
    assert await store.load_snapshot("tally-t-1") is None
    assert (await repo.load("t-1")).total == 1


async def test_load_reads_long_streams_page_by_page(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(strangler_events.repository, "PAGE", 2)
    repo = tallies(store)
    tally = await repo.load("t-1")
    tally.add(1, 2, 3, 4, 5)
    await repo.save(tally)
    loaded = await repo.load("t-1")
    assert (loaded.version, loaded.total) == (5, 15)


async def test_older_events_are_upcast_on_load(store: EventStore) -> None:
    await store.append("tally-t-1", [NewEvent("Counted", {"count": 4})])  # v1 data
    with pytest.raises(EventDataError) as caught:
        await tallies(store).load("t-1")
    assert str(caught.value) == (
        "tally-t-1 version 1: Counted has schema version 1, Tally expects 2 "
        "(register an upcaster for the older versions)"
    )
    upcasters = Upcasters()
    upcasters.register("Counted", 1)(lambda payload: {"n": payload["count"]})
    assert (await tallies(store, upcasters=upcasters).load("t-1")).total == 4


async def test_an_unknown_stored_event_names_the_stream_and_version(store: EventStore) -> None:
    await store.append("tally-t-1", [NewEvent("Counted", {"n": 1}, schema_version=2)])
    await store.append("tally-t-1", [NewEvent("Reset", {})])
    with pytest.raises(UnknownEvent) as caught:
        await tallies(store).load("t-1")
    assert str(caught.value) == (
        "tally-t-1 version 2: Tally has no apply method for event type 'Reset' "
        "(it applies: Counted)"
    )


def test_a_bad_snapshot_interval_or_category_is_refused() -> None:
    store = cast(EventStore, object())
    with pytest.raises(ValueError, match="snapshot_every 0 is not valid: expected an integer"):
        Repository(store, Tally, "tally", snapshot_every=0)
    with pytest.raises(ValueError, match="category 'tal-ly' is not valid"):
        Repository(store, Tally, "tal-ly")


# --- the command handler ------------------------------------------------------------


async def test_handle_loads_decides_and_saves(store: EventStore) -> None:
    repo = tallies(store)
    done = await handle(repo, "t-1", lambda t: t.add(3), metadata={"request_id": "r-1"})
    assert (done.events, done.attempts, done.aggregate.total) == ((Counted(3),), 1, 3)
    nothing = await handle(repo, "t-1", lambda t: t.add_up_to(5, 9))
    assert (nothing.events, nothing.attempts, nothing.aggregate.version) == ((), 1, 1)
    assert [e.metadata for e in await store.read_stream("tally-t-1")] == [{"request_id": "r-1"}]


async def test_handle_retries_a_conflict_and_decides_again(store: EventStore) -> None:
    meddling = Meddling(store, conflicts=2)
    repo = tallies(meddling)
    done = await handle(repo, "t-1", lambda t: t.add_up_to(250, 20))
    assert (done.attempts, meddling.appends) == (3, 3)
    assert (done.aggregate.total, done.events) == (220, (Counted(20),))
    # Decided again on the state the other writer left: over the limit, nothing to do.
    meddling.conflicts = 1
    done = await handle(repo, "t-1", lambda t: t.add_up_to(250, 20))
    assert (done.attempts, done.events, done.aggregate.total) == (2, (), 320)


async def test_handle_gives_up_after_the_retries(store: EventStore) -> None:
    repo = tallies(Meddling(store, conflicts=10))
    with pytest.raises(CommandConflict) as caught:
        await handle(repo, "t-1", lambda t: t.add(1), retries=2)
    assert str(caught.value) == (
        "command on stream 'tally-t-1' gave up after 3 attempts: each found the stream "
        "changed by another writer (last: expected version 2, actual version 3)"
    )
    assert (caught.value.stream, caught.value.attempts) == ("tally-t-1", 3)
    assert isinstance(caught.value.__cause__, WrongExpectedVersion)
    assert [e.data["n"] for e in await store.read_stream("tally-t-1")] == [100, 100, 100]


async def test_handle_does_not_retry_a_domain_error(store: EventStore) -> None:
    meddling = Meddling(store)
    with pytest.raises(ValueError, match=r"each n must be at least 1, got \[0\]"):
        await handle(tallies(meddling), "t-1", lambda t: t.add(0))
    assert meddling.appends == 0
    with pytest.raises(ValueError, match="retries -1 is not valid: expected an integer >= 0"):
        await handle(tallies(store), "t-1", lambda t: t.add(1), retries=-1)


async def test_concurrent_commands_all_land(store: EventStore) -> None:
    repo = tallies(store)

    def adding(n: int) -> Callable[[Tally], object]:
        return lambda t: t.add(n)

    results = await asyncio.gather(
        *(handle(repo, "t-1", adding(n), retries=10) for n in range(1, 7))
    )
    final = await repo.load("t-1")
    assert (final.total, final.version) == (21, 6)
    assert sorted(e.data["n"] for e in await store.read_stream("tally-t-1")) == [1, 2, 3, 4, 5, 6]
    # gather starts every load before any save, so the writers did race and retry.
    assert sum(r.attempts for r in results) > len(results)
