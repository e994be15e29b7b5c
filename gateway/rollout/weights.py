"""The weights a rollout sets, laid over the configured splits (pure).

A rollout gives its new backend a weight out of 100; the route's other backends share
the rest in proportion to their configured weights.  The routing table places new
backends first and legacy last in its point space, so raising the new backend's weight
only ever moves sticky users from legacy to new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from gateway.config.model import Config, Route

Weights = Mapping[str, tuple[str, int]]  # route -> (new backend, its weight out of 100)


def split_with(route: Route, backend: str, weight: int) -> tuple[tuple[str, int], ...]:
    """``route``'s split with ``backend`` at ``weight`` and the others sharing 100 - weight."""
    others = [(n, w) for n, w in route.split if n != backend]
    rest = 100 - weight
    total = sum(w for _, w in others)
    shares = {n: (rest * w // total if total else rest // len(others)) for n, w in others}
    if others:
        last = others[-1][0]
        shares[last] += rest - sum(shares.values())
    return tuple((n, weight if n == backend else shares[n]) for n, _ in route.split)


def _applies(route: Route, backend: str) -> bool:
    rollout = route.rollout
    return rollout is not None and rollout.backend == backend and len(route.split) > 1


def with_weights(config: Config, weights: Weights) -> Config:
    """``config`` with every rollout's weight applied; routes without one are unchanged."""
    routes = []
    for route in config.routes:
        wanted = weights.get(route.name)
        if wanted is not None and _applies(route, wanted[0]):
            route = replace(route, split=split_with(route, *wanted))
        routes.append(route)
    return replace(config, routes=tuple(routes))
