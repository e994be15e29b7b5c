"""The rollout store contract, run against every adapter: SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.rollout.gates import Evidence
from gateway.rollout.machine import PROGRESSING, State, Verdict
from gateway.rollout.store import RolloutStore, open_store, weights_of
from gateway.rollout.store.port import Conflict


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RolloutStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/rollout.db"
    else:
        url = request.getfixturevalue("pg_database")
    s = open_store(url)
    await s.init()
    await s.init()  # idempotent
    try:
        yield s
    finally:
        await s.close()


def progressing(weight: int = 5) -> State:
    evidence = Evidence({"v2": 300, "legacy": 5700}, {"v2": 1}, {"v2": 0.01}, 250, 249, "GET /a")
    verdict = Verdict(10.0, 0, 5, "pass", "", None, None, "every gate passed", evidence)
    return State("orders", "v2", PROGRESSING, 1, weight, 10.0, 0, "", "", (verdict,))


async def test_a_state_round_trips_with_its_history(store: RolloutStore) -> None:
    assert await store.get("orders") is None
    assert await store.put(progressing(), 0) == 1
    assert await store.get("orders") == (progressing(), 1)
    assert await store.put(progressing(25), 1) == 2
    assert await store.all() == {"orders": (progressing(25), 2)}


async def test_a_stale_version_is_a_conflict(store: RolloutStore) -> None:
    await store.put(progressing(), 0)
    with pytest.raises(Conflict, match="the rollout of orders changed meanwhile"):
        await store.put(progressing(25), 0)
    await store.put(progressing(25), 1)
    with pytest.raises(Conflict):
        await store.put(progressing(50), 1)
    assert await store.get("orders") == (progressing(25), 2)


async def test_two_connections_see_the_same_weights(store: RolloutStore) -> None:
    other = open_store(store.url)
    try:
        await store.put(progressing(25), 0)
        assert weights_of(s for s, _ in (await other.all()).values()) == {"orders": ("v2", 25)}
    finally:
        await other.close()


def test_pending_rollouts_move_no_weight() -> None:
    assert weights_of([State("orders", "v2"), progressing(5)]) == {"orders": ("v2", 5)}


async def test_one_holder_leads_until_it_resigns_or_its_lease_expires(
    store: RolloutStore,
) -> None:
    other = open_store(store.url)
    try:
        assert await store.leader() is None
        assert await store.lead("a", ttl=30)
        assert not await other.lead("b", ttl=30)  # a's lease has not expired
        assert await store.lead("a", ttl=30)  # renewed
        assert await other.leader() == "a"
        await other.resign("b")  # not b's to give up
        assert await store.leader() == "a"
        await store.resign("a")
        assert await store.leader() is None
        assert await other.lead("b", ttl=30)
        assert not await store.lead("a", ttl=30)
    finally:
        await other.close()


async def test_an_expired_lease_is_taken_over(store: RolloutStore) -> None:
    assert await store.lead("a", ttl=-1)  # expired as soon as it is written
    assert await store.leader() is None
    assert await store.lead("b", ttl=30)
    assert await store.leader() == "b"
