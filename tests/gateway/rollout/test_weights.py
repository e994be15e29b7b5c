"""Rollout weights laid over the splits, and the sticky monotone property while they move."""

from __future__ import annotations

from gateway.config import parse
from gateway.proxy.routing import Facts, Table
from gateway.rollout.weights import with_weights

DOC = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:9001", legacy: true}
  v2: {url: "http://127.0.0.1:9002"}
routes:
  - name: api
    split: {legacy: 100, v2: 0}
    sticky: {header: x-user}
    rollout: {backend: v2, steps: [5, 25, 50, 100]}
  - name: other
    split: {legacy: 100}
"""


def test_the_new_backend_gets_its_weight_and_the_rest_goes_to_the_others() -> None:
    config = with_weights(parse(DOC), {"api": ("v2", 25), "other": ("v2", 50)})
    assert config.routes[0].split == (("legacy", 75), ("v2", 25))
    assert config.routes[1].split == (("legacy", 100),)  # no rollout: untouched


def test_raising_the_weight_only_moves_sticky_users_from_legacy_to_new() -> None:
    base = parse(DOC)
    users = [f"user-{i}" for i in range(2000)]
    previous: dict[str, str] = {}
    for weight in (0, 5, 25, 50, 100):
        table = Table(with_weights(base, {"api": ("v2", weight)}))
        now = {}
        for user in users:
            decision = table.decide(Facts("GET", "/x", {"x-user": user}), 0.5)
            assert decision is not None
            now[user] = decision.backend
        moved_back = [u for u in users if previous.get(u) == "v2" and now[u] != "v2"]
        assert moved_back == []
        share = sum(b == "v2" for b in now.values()) / len(users)
        assert abs(share - weight / 100) < 0.04
        previous = now
