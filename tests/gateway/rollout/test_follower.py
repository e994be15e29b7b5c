"""A worker's follower hands on weight changes once, and keeps them when the store fails."""

from __future__ import annotations

from pathlib import Path

from gateway.rollout.follower import Follower
from gateway.rollout.machine import PROGRESSING, State
from gateway.rollout.store import open_store
from gateway.rollout.weights import Weights


async def test_changes_are_handed_on_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/r.db")
    seen: list[Weights] = []
    follower = Follower(store, seen.append)
    try:
        assert await follower.poll() is False  # nothing stored yet
        await store.put(State("api", "v2", PROGRESSING, 0, 5), 0)
        assert await follower.poll() is True
        assert await follower.poll() is False
        assert seen == [{"api": ("v2", 5)}]
    finally:
        await store.close()


async def test_an_unreadable_store_keeps_the_weights(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    store = open_store(f"sqlite:///{tmp_path}/dir.db")
    follower = Follower(store, lambda w: None)
    follower.weights = {"api": ("v2", 25)}
    assert await follower.poll() is False
    assert follower.weights == {"api": ("v2", 25)}
    await store.close()
