"""The event store contract, run against both adapters: SQLite (a temporary file) and a
real PostgreSQL.  Concurrency is tested with two store instances (two connections, two
pools) writing to one database, as two service processes would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strangler_events.eventstore import (
    ANY,
    METADATA_KEYS,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    DuplicateEventId,
    EventStore,
    EventStoreError,
    Expected,
    InvalidStreamName,
    NewEvent,
    WrongExpectedVersion,
    open_event_store,
    partition_of,
    stream_hash,
    stream_id_of,
    stream_name,
    validate_stream,
)
from strangler_events.upcast import Upcasters


@dataclass
class Stores:
    url: str
    a: EventStore
    b: EventStore  # a second writer on the same database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    url = (
        f"sqlite:///{tmp_path}/events.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    a, b = open_event_store(url), open_event_store(url)
    await a.init()
    await b.init()  # idempotent
    try:
        yield Stores(url, a, b)
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def store(stores: Stores) -> EventStore:
    return stores.a


def ev(n: int, type: str = "Happened") -> NewEvent:
    return NewEvent(type, {"n": n})


def unique(category: str = "order") -> str:
    return stream_name(category, uuid.uuid4().hex[:8])


# --- the port's pure parts --------------------------------------------------------------


def test_the_partition_hash_is_crc32_and_must_never_change() -> None:
    # Consumer groups already running depend on these values: pinned.
    assert stream_hash("order-1") == 3769860079
    assert stream_hash("order-42") == 1475806942
    assert [partition_of(s, 4) for s in ("order-1", "order-42", "cart-7")] == [3, 2, 1]
    assert partition_of("anything-1", 1) == 0


def test_names_errors_and_defaults() -> None:
    assert stream_name("order", "4-2") == "order-4-2" and stream_id_of("order-4-2") == "4-2"
    assert validate_stream("a.b:c_1-x") == "a.b:c_1-x"
    err = WrongExpectedVersion("order-1", NO_STREAM, 3)
    assert str(err) == "stream 'order-1': expected version no stream, actual version 3"
    assert str(WrongExpectedVersion("order-1", STREAM_EXISTS, 0)).endswith(
        "expected version stream exists, actual version 0"
    )
    assert isinstance(err, EventStoreError)
    a, b = NewEvent("X", {}), NewEvent("X", {})
    assert a.id != b.id and uuid.UUID(a.id) and a.schema_version == 1 and a.metadata == {}
    assert METADATA_KEYS == ("causation_id", "correlation_id", "request_id", "traceparent")


# --- appending and reading a stream -----------------------------------------------------


async def test_an_append_is_read_back_with_every_field(store: EventStore) -> None:
    meta = {"causation_id": "c1", "correlation_id": "r1", "request_id": "q1", "traceparent": "00-x"}
    first = NewEvent("AccountOpened", {"owner": "ada", "nested": [1, {"a": None}]}, meta)
    second = NewEvent("MoneyDeposited", {"amount": 10}, schema_version=3)
    before = time.time()
    result = await store.append("account-1", [first, second], NO_STREAM)
    assert (result.first_version, result.last_version) == (1, 2)
    events = await store.read_stream("account-1")
    assert [(e.id, e.type, e.version) for e in events] == [
        (first.id, "AccountOpened", 1),
        (second.id, "MoneyDeposited", 2),
    ]
    assert events[0].data == first.data and events[0].metadata == meta
    assert events[1].schema_version == 3 and events[1].metadata == {}
    assert events[0].position < events[1].position == result.last_position
    assert events[0].stream == "account-1" and events[0].category == "account"
    assert events[0].stream_id == "1"
    assert before - 1 <= events[0].recorded_at <= time.time() + 1
    assert await store.stream_version("account-1") == 2
    assert await store.stream_version("account-2") == 0


async def test_versions_continue_across_appends_and_positions_grow(store: EventStore) -> None:
    results = [await store.append("order-7", [ev(i), ev(i + 100)]) for i in range(3)]
    assert [(r.first_version, r.last_version) for r in results] == [(1, 2), (3, 4), (5, 6)]
    positions = [r.last_position for r in results]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert [e.data["n"] for e in await store.read_stream("order-7")] == [0, 100, 1, 101, 2, 102]


async def test_read_stream_forwards_backwards_with_limits(store: EventStore) -> None:
    await store.append("order-1", [ev(i) for i in range(1, 8)])

    async def versions(**kwargs: object) -> list[int]:
        return [e.version for e in await store.read_stream("order-1", **kwargs)]  # type: ignore[arg-type]

    assert await versions() == [1, 2, 3, 4, 5, 6, 7]
    assert await versions(from_version=5) == [5, 6, 7]
    assert await versions(from_version=2, limit=3) == [2, 3, 4]
    assert await versions(backwards=True) == [7, 6, 5, 4, 3, 2, 1]
    assert await versions(backwards=True, limit=2) == [7, 6]
    assert await versions(backwards=True, from_version=3) == [3, 2, 1]
    assert await versions(from_version=8) == []
    assert await store.read_stream("order-404") == []
    with pytest.raises(ValueError, match="limit 0"):
        await store.read_stream("order-1", limit=0)


# --- expected versions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "expected", "ok"),
    [
        (0, ANY, True),
        (2, ANY, True),
        (0, NO_STREAM, True),
        (2, NO_STREAM, False),
        (0, STREAM_EXISTS, False),
        (2, STREAM_EXISTS, True),
        (0, 0, True),
        (2, 2, True),
        (2, 1, False),
        (2, 3, False),
        (0, 1, False),
    ],
)
async def test_every_expected_version_variant(
    store: EventStore, existing: int, expected: Expected, ok: bool
) -> None:
    stream = unique()
    if existing:
        await store.append(stream, [ev(i) for i in range(existing)])
    if ok:
        result = await store.append(stream, [ev(9)], expected)
        assert result.first_version == result.last_version == existing + 1
        return
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append(stream, [ev(9)], expected)
    err = caught.value
    assert (err.stream, err.expected, err.actual) == (stream, expected, existing)
    assert str(err) == f"stream {stream!r}: expected version {expected}, actual version {existing}"
    assert await store.stream_version(stream) == existing  # nothing appended


async def test_an_invalid_expectation_is_refused(store: EventStore) -> None:
    for bad in (-1, True, "3"):
        with pytest.raises(ValueError, match="expected version"):
            await store.append("order-1", [ev(1)], bad)  # type: ignore[arg-type]


async def test_two_writers_racing_on_one_version_one_wins(stores: Stores) -> None:
    """Real concurrency: two store instances (own connections) append at the same
    expected version, many rounds; each round exactly one wins."""
    stream = unique()
    for version in range(15):
        outcomes = await asyncio.gather(
            stores.a.append(stream, [ev(version, "FromA")], version),
            stores.b.append(stream, [ev(version, "FromB")], version),
            return_exceptions=True,
        )
        wins = [o for o in outcomes if isinstance(o, AppendResult)]
        losses = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
        assert len(wins) == 1 and len(losses) == 1, outcomes
        assert (losses[0].stream, losses[0].expected, losses[0].actual) == (
            stream,
            version,
            version + 1,
        )
        assert f"expected version {version}, actual version {version + 1}" in str(losses[0])
    events = await stores.a.read_stream(stream)
    assert [e.version for e in events] == list(range(1, 16))


async def test_concurrent_writers_with_any_all_land_densely(stores: Stores) -> None:
    stream = unique()

    async def write(target: EventStore, tag: str) -> None:
        for i in range(20):
            await target.append(stream, [ev(i, tag)])

    await asyncio.gather(write(stores.a, "A"), write(stores.b, "B"))
    events = await stores.b.read_stream(stream)
    assert [e.version for e in events] == list(range(1, 41))
    for tag in "AB":
        assert [e.data["n"] for e in events if e.type == tag] == list(range(20))


# --- idempotent retries ------------------------------------------------------------------


@pytest.mark.parametrize("expected", [NO_STREAM, 0, ANY])
async def test_the_same_append_retried_returns_the_first_result(
    stores: Stores, expected: Expected
) -> None:
    stream = unique()
    batch = [ev(1), ev(2)]
    first = await stores.a.append(stream, batch, expected)
    again = await stores.b.append(stream, batch, expected)  # the reply was lost: retry
    assert again == first
    assert len(await stores.a.read_stream(stream)) == 2


async def test_a_retry_after_later_appends_still_returns_the_first_result(
    store: EventStore,
) -> None:
    stream = unique()
    await store.append(stream, [ev(0)])
    batch = [ev(1), ev(2)]
    first = await store.append(stream, batch, 1)
    await store.append(stream, [ev(3)], 3)
    assert await store.append(stream, batch, 1) == first
    assert await store.append(stream, batch, STREAM_EXISTS) == first
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append(stream, batch, 2)  # not the same append: a stale writer
    assert caught.value.actual == 4
    assert await store.stream_version(stream) == 4


async def test_reused_ids_that_are_not_a_retry_are_refused(store: EventStore) -> None:
    stream = unique()
    one, two = ev(1), ev(2)
    await store.append(stream, [one, two])
    with pytest.raises(DuplicateEventId, match=one.id):
        await store.append(stream, [one, ev(3)])  # part of an earlier append
    with pytest.raises(DuplicateEventId, match="in stream"):
        await store.append(unique(), [two])  # another stream
    with pytest.raises(DuplicateEventId, match="twice in this append"):
        await store.append(stream, [ev(4)] * 2)
    with pytest.raises(EventStoreError, match="not valid: expected a UUID"):
        await store.append(stream, [NewEvent("X", {}, id="not-a-uuid")])
    assert await store.stream_version(stream) == 2


# --- categories, everything, consumer groups ----------------------------------------------


async def test_category_and_all_reads_page_by_position(store: EventStore) -> None:
    await store.append("order-1", [ev(1)])
    await store.append("orders-1", [ev(2)])  # another category, not a prefix match
    await store.append("invoice-1", [ev(3)])
    await store.append("order-2", [ev(4), ev(5)])
    await store.append("order-1", [ev(6)])
    orders = await store.read_category("order")
    assert [(e.stream, e.data["n"]) for e in orders] == [
        ("order-1", 1),
        ("order-2", 4),
        ("order-2", 5),
        ("order-1", 6),
    ]
    page = await store.read_category("order", after_position=orders[1].position, limit=1)
    assert [e.data["n"] for e in page] == [5]
    everything = await store.read_all()
    assert [e.data["n"] for e in everything] == [1, 2, 3, 4, 5, 6]
    assert [e.data["n"] for e in await store.read_all(everything[2].position, limit=2)] == [4, 5]
    assert await store.read_all(everything[-1].position) == []
    with pytest.raises(InvalidStreamName, match="category 'order-1'"):
        await store.read_category("order-1")


async def test_consumer_group_members_split_streams_and_cover_everything(
    store: EventStore,
) -> None:
    streams = [f"cart-{i}" for i in range(24)]
    for round_ in range(2):
        for s in streams:
            await store.append(s, [ev(round_)])
    size = 3
    seen: dict[str, set[int]] = {}
    total = 0
    for member in range(size):
        by_category = await store.read_category("cart", member=member, size=size)
        by_all = await store.read_all(member=member, size=size)
        assert by_category == by_all
        total += len(by_category)
        for e in by_category:
            assert partition_of(e.stream, size) == member
            seen.setdefault(e.stream, set()).add(member)
    assert total == 48 and set(seen) == set(streams)
    assert all(len(members) == 1 for members in seen.values())  # one stream, one member
    assert len({next(iter(m)) for m in seen.values()}) == size  # every member has work
    with pytest.raises(ValueError, match="member=3 size=3"):
        await store.read_all(member=3, size=3)


# --- names, snapshots, upcasting ------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["order", "-1", "order-", "or der-1", "order- 1", "order-1\n", "", "x" * 201 + "-1"]
)
async def test_invalid_stream_names_are_refused_with_the_reason(
    store: EventStore, bad: str
) -> None:
    with pytest.raises(InvalidStreamName, match="is not valid|characters long"):
        await store.append(bad, [ev(1)])
    with pytest.raises(InvalidStreamName):
        await store.read_stream(bad)


async def test_stream_ids_may_contain_dashes(store: EventStore) -> None:
    stream = stream_name("order", str(uuid.uuid4()))
    await store.append(stream, [ev(1)])
    (event,) = await store.read_category("order")
    assert event.category == "order" and event.stream_id == stream.split("-", 1)[1]


async def test_snapshots_newer_replaces_older_and_keep_their_schema_version(
    store: EventStore,
) -> None:
    assert await store.load_snapshot("account-1") is None
    await store.save_snapshot("account-1", 10, 1, {"balance": 100})
    await store.save_snapshot("account-1", 20, 2, {"balance": 200, "owner": "ada"})
    snap = await store.load_snapshot("account-1")
    assert snap is not None
    assert (snap.stream, snap.version, snap.schema_version) == ("account-1", 20, 2)
    assert snap.state == {"balance": 200, "owner": "ada"} and snap.recorded_at > 0
    await store.save_snapshot("account-1", 15, 9, {"balance": 150})  # older: ignored
    kept = await store.load_snapshot("account-1")
    assert kept is not None and kept.version == 20 and kept.schema_version == 2
    assert await store.load_snapshot("account-2") is None
    with pytest.raises(ValueError, match="version 0"):
        await store.save_snapshot("account-1", 0, 1, {})


async def test_upcasters_apply_on_read_when_given(store: EventStore) -> None:
    up = Upcasters()

    @up.register("Deposited", 1)
    def cents(payload: dict[str, int]) -> dict[str, int]:
        return {"cents": payload["amount"] * 100}

    await store.append("account-9", [NewEvent("Deposited", {"amount": 2})])
    await store.append("account-9", [NewEvent("Deposited", {"cents": 5}, schema_version=2)])
    raw = await store.read_stream("account-9")
    assert [(e.schema_version, e.data) for e in raw] == [(1, {"amount": 2}), (2, {"cents": 5})]
    for events in (
        await store.read_stream("account-9", upcasters=up),
        await store.read_category("account", upcasters=up),
        await store.read_all(upcasters=up),
    ):
        assert [(e.schema_version, e.data) for e in events] == [
            (2, {"cents": 200}),
            (2, {"cents": 5}),
        ]
