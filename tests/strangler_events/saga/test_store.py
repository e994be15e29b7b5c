"""The saga store on SQLite and PostgreSQL: instances created and updated with their
messages in the outbox, listed, counted, found by deadline; and on PostgreSQL two
transitions of one instance at once: one wins, the other decides again on the winner's
state (no lost update)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.capture.outbox import OutboxStore, open_store
from strangler_events.database.factory import open_database
from strangler_events.database.port import Database
from strangler_events.saga.instance import Decision, Instance, Outgoing
from strangler_events.saga.store import ConcurrencyError, SagaStore


@pytest.fixture
async def parts(stores: tuple[Database, OutboxStore]) -> tuple[Database, OutboxStore]:
    await SagaStore(stores[0]).init()
    return stores


def created(ident: str, state: str = "running", deadline: float | None = None) -> Decision:
    inst = Instance("s", ident, state, {"writers": []}, 10.0, 10.0, deadline=deadline)
    msg = Outgoing(f"00000000-0000-4000-8000-{int(ident):012d}", "Do", "svc", ident, {}, {})
    return Decision(inst, [msg])


def always(decision: Decision) -> Callable[[Instance | None], Decision]:
    return lambda found: decision


def written_by(name: str, state: str = "running") -> object:
    def decide(found: Instance | None) -> Decision:
        assert found is not None
        inst = found.copy()
        inst.data["writers"].append(name)
        inst.state = state
        return Decision(inst)

    return decide


async def test_instances_are_created_updated_listed_counted_and_found_by_deadline(
    parts: tuple[Database, OutboxStore],
) -> None:
    database, box = parts
    store = SagaStore(database)
    for ident, deadline in (("1", 50.0), ("2", None), ("3", 20.0)):
        decision = await store.apply("s", ident, always(created(ident, deadline=deadline)))
        assert decision.instance is not None
    assert len(await box.pending(10)) == 3  # each creation's message, with it
    again = await store.apply("s", "1", lambda f: Decision.nothing("exists") if f else created("1"))
    assert again.ignored == "exists"
    await store.apply("s", "2", written_by("a", "completed"))  # type: ignore[arg-type]
    (two,) = await store.get("2")
    assert (two.version, two.state, two.data) == (2, "completed", {"writers": ["a"]})
    assert [i.id for i in await store.instances("s", "running")] == ["1", "3"]
    assert await store.get("2", saga="other") == []
    assert await store.counts() == {("s", "running"): 2, ("s", "completed"): 1}
    assert await store.due("s", now=30.0) == ["3"]
    assert await store.due("s", now=60.0) == ["3", "1"]


async def test_a_version_conflict_retried_too_often_raises(
    parts: tuple[Database, OutboxStore],
) -> None:
    database, _ = parts
    store = SagaStore(database)

    def stale(found: Instance | None) -> Decision:
        inst = Instance("s", "9", "running", {}, 0, 0, version=7)  # never the stored one
        return Decision(inst)

    await store.apply("s", "9", lambda f: created("9"))
    with pytest.raises(ConcurrencyError, match="lost the race 20 times"):
        await store.apply("s", "9", stale)


@pytest.mark.postgres
async def test_two_transitions_at_once_one_wins_the_other_decides_again(pg_database: str) -> None:
    box = open_store(pg_database)
    await box.init()
    await box.close()
    a_holding, b_decided = asyncio.Event(), asyncio.Event()

    async def hold_a(decision: Decision) -> None:
        assert decision.instance is not None
        if decision.instance.data["writers"][-1:] == ["a"]:
            a_holding.set()  # A wrote version 2 and has not committed it
            await asyncio.wait_for(b_decided.wait(), 10)  # B read the old version meanwhile

    database = open_database(pg_database)
    try:
        store = SagaStore(database, before_commit=hold_a)
        await store.init()
        await store.apply("s", "1", lambda f: created("1"))
        seen_by_b: list[int] = []

        def decide_b(found: Instance | None) -> Decision:
            assert found is not None
            seen_by_b.append(found.version)
            b_decided.set()
            return written_by("b")(found)  # type: ignore[operator,no-any-return]

        async def b_after_a_wrote() -> Decision:
            # Only once A holds its write: B started first could commit before A read.
            await asyncio.wait_for(a_holding.wait(), 10)
            return await store.apply("s", "1", decide_b)

        await asyncio.gather(
            store.apply("s", "1", written_by("a")),  # type: ignore[arg-type]
            b_after_a_wrote(),
        )
        (inst,) = await store.get("1")
        assert inst.version == 3 and inst.data["writers"] == ["a", "b"]
        assert seen_by_b == [1, 2]  # decided on the old version, lost, decided again
        assert store.conflicts == 1
    finally:
        await database.close()
