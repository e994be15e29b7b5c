"""The rollout store contract, run against every adapter: SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.rollout.evidence import Counts
from gateway.rollout.gates import Evidence
from gateway.rollout.machine import PROGRESSING, State, Verdict
from gateway.rollout.store import RolloutStore, open_store, weights_of
from gateway.rollout.store.port import Conflict
from tests.eventually import eventually


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


def counted(n: float, errors: float = 0.0) -> Counts:
    return Counts({"v2": n, "legacy": 2 * n}, {"v2": errors}, (0.1, 1.0), {"v2": [n, 0, 0, n]})


async def test_every_replicas_counters_are_read_by_route(store: RolloutStore) -> None:
    other = open_store(store.url)  # another gateway replica
    try:
        assert await store.counters("orders", 60) == {}
        await store.publish("a:1:x", {"orders": counted(10), "users": counted(1)})
        await other.publish("b:2:y", {"orders": counted(5, 1)})
        assert await other.counters("orders", 60) == {"a:1:x": counted(10), "b:2:y": counted(5, 1)}
        assert await store.counters("users", 60) == {"a:1:x": counted(1)}
        # a replica's next publish replaces its last counters
        await store.publish("a:1:x", {"orders": counted(12)})
        assert (await other.counters("orders", 60))["a:1:x"] == counted(12)
        await store.publish("a:1:x", {})  # nothing to publish is no error
    finally:
        await other.close()


async def test_only_counters_published_within_max_age_are_read(store: RolloutStore) -> None:
    await store.publish("old:1:x", {"orders": counted(3)})

    async def aged() -> bool:
        return await store.counters("orders", 0.05) == {}

    await eventually(aged, timeout=5, message="the 50 ms old counters left out")
    await store.publish("new:2:y", {"orders": counted(4)})
    assert await store.counters("orders", 0.05) == {"new:2:y": counted(4)}
    assert set(await store.counters("orders", 60)) == {"old:1:x", "new:2:y"}


async def test_a_publish_removes_counters_past_the_retention(
    store: RolloutStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for adapter in ("sqlite", "postgres"):
        monkeypatch.setattr(f"gateway.rollout.store.{adapter}.COUNTERS_RETENTION", 0.05)
    await store.publish("gone:1:x", {"orders": counted(3)})
    await store.publish("here:2:y", {"orders": counted(4)})

    async def removed() -> bool:
        await store.publish("here:2:y", {"orders": counted(4)})
        return set(await store.counters("orders", 3600)) == {"here:2:y"}

    await eventually(removed, timeout=5, message="gone's counters removed after 50 ms")
