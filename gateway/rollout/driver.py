"""The one process that drives rollouts (the supervisor): it judges each route's open
window from the merged worker metrics and the shadow results, applies operator actions,
stores every transition, counts it and logs it as one JSON line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config.model import Config, Route
from gateway.metrics.registry import Registry
from gateway.rollout.evidence import Counts, ShadowTally, between, counts
from gateway.rollout.machine import (
    PROGRESSING,
    Abort,
    Approve,
    Event,
    Pause,
    Resume,
    Start,
    State,
    Tick,
    apply,
    initial,
)
from gateway.rollout.store import RolloutStore

log = logging.getLogger("strangler.rollout")
ShadowSource = Callable[[str, float], Awaitable[ShadowTally]]
ACTIONS: dict[str, Callable[[float], Event]] = {
    "start": Start,
    "pause": Pause,
    "resume": Resume,
    "approve": Approve,
    "abort": Abort,
}


class UnknownRollout(Exception):
    """The route does not exist or has no ``rollout:`` block."""


async def _no_shadow(route: str, since: float) -> ShadowTally:
    return ShadowTally()


class Driver:
    def __init__(
        self,
        store: RolloutStore,
        config: Callable[[], Config],
        snapshot: Callable[[], dict[str, Any]],
        registry: Registry,
        shadow: ShadowSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.config, self.snapshot = store, config, snapshot
        self.shadow = shadow or _no_shadow
        self.clock = clock
        self._baselines: dict[str, tuple[float, Counts]] = {}
        self.weight = registry.gauge(
            "strangler_rollout_weight",
            "The rollout's weight per route/backend.",
            ("route", "backend"),
        )
        self.steps = registry.counter(
            "strangler_rollout_steps_total", "Rollout steps entered.", ("route",)
        )
        self.verdicts = registry.counter(
            "strangler_rollout_verdicts_total", "Judged rollout windows.", ("route", "outcome")
        )
        self.transitions = registry.counter(
            "strangler_rollout_transitions_total", "Rollout phase changes.", ("route", "phase")
        )

    def _route(self, name: str) -> Route:
        for route in self.config().routes:
            if route.name == name and route.rollout is not None:
                return route
        raise UnknownRollout(f"route '{name}' has no rollout: block")

    async def _load(self, route: Route) -> tuple[State, int]:
        assert route.rollout is not None
        stored = await self.store.get(route.name)
        if stored is not None:
            return stored
        configured = dict(route.split).get(route.rollout.backend, 0)
        return initial(route.name, route.rollout, configured), 0

    async def act(self, name: str, action: str) -> State:
        """Apply an operator action; InvalidTransition or UnknownRollout when refused."""
        route = self._route(name)
        assert route.rollout is not None
        state, version = await self._load(route)
        new = apply(state, route.rollout, ACTIONS[action](self.clock()))
        await self._save(state, new, version, action)
        return new

    async def tick(self) -> None:
        """Judge every progressing rollout whose window is due."""
        now = self.clock()
        snapshot = self.snapshot()
        for route in self.config().routes:
            if route.rollout is None:
                continue
            stored = await self.store.get(route.name)
            if stored is None or stored[0].phase != PROGRESSING:
                self._baselines.pop(route.name, None)
                if stored is not None:
                    self.weight.set((route.name, stored[0].backend), stored[0].weight)
                continue
            state, version = stored
            self.weight.set((state.route, state.backend), state.weight)
            current = counts(snapshot, route.name)
            base = self._baselines.get(route.name)
            if base is None or base[0] != state.window_start:
                # A window this process has no baseline for opens here (e.g. after a restart).
                self._baselines[route.name] = (state.window_start, current)
                continue
            tally = await self.shadow(route.name, state.window_start)
            new = apply(state, route.rollout, Tick(now, between(base[1], current, tally)))
            if new != state:
                await self._save(state, new, version, "tick")
                if new.window_start != state.window_start:
                    self._baselines[route.name] = (new.window_start, current)

    async def _save(self, old: State, new: State, version: int, cause: str) -> None:
        await self.store.put(new, version)
        self.weight.set((new.route, new.backend), new.weight)
        if len(new.history) > len(old.history) or (
            new.history and old.history and new.history[-1] != old.history[-1]
        ):
            self.verdicts.inc((new.route, new.history[-1].outcome))
        if new.step != old.step or new.weight != old.weight:
            self.steps.inc((new.route,))
        if new.phase != old.phase or new.weight != old.weight:
            self.transitions.inc((new.route, new.phase))
            log.info(
                json.dumps(
                    {
                        "event": "rollout",
                        "route": new.route,
                        "cause": cause,
                        "from": old.phase,
                        "to": new.phase,
                        "step": new.step,
                        "backend": new.backend,
                        "weight": new.weight,
                        "reason": new.reason,
                    }
                )
            )

    async def status(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every rollout (or one) as the admin API shows it."""
        routes = [self._route(name)] if name else [r for r in self.config().routes if r.rollout]
        out = []
        for route in routes:
            state, version = await self._load(route)
            assert route.rollout is not None
            shown = state.to_json()
            shown["steps"] = [s.weight for s in route.rollout.steps]
            shown["version"] = version
            out.append(shown)
        return out
