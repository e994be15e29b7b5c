"""The one process that drives rollouts (the supervisor): it judges each route's open
window from the counters of every gateway replica and the shadow results, applies
operator actions, stores every transition, counts it and logs it as one JSON line.

Every replica's driver publishes its own merged worker counters of the routes with a
``rollout:`` block to the store each tick (about once a second), under an instance id
that is new each time the process starts (host, pid and a random part), so a restarted
replica is a new one and never makes counters go backwards.

With several gateway replicas on one store, only the holder of the store's lease judges
windows (``tick`` renews it first); the others keep their gauges in step with the store.
When a window opens, the driver keeps every replica's last published counters as its
baseline; each tick it reads the counters replicas published since (a replica that went
away keeps its last ones), and the evidence is the sum of every replica's difference
(:func:`gateway.rollout.evidence.across`): traffic served by any replica decides a step.
A replica's counters reach the store up to a second late, so traffic served just before a
window closes may count in the next window instead; none is lost or counted twice.
Operator actions are taken by any replica: the store's version check orders them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.config.model import Config, Route
from gateway.metrics.registry import Registry
from gateway.rollout.evidence import Counts, ShadowTally, across, counts, evidence
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
from gateway.rollout.store.port import COUNTERS_RETENTION

log = logging.getLogger("strangler.rollout")
ShadowSource = Callable[[str, float], Awaitable[ShadowTally]]
ACTIONS: dict[str, Callable[[float], Event]] = {
    "start": Start,
    "pause": Pause,
    "resume": Resume,
    "approve": Approve,
    "abort": Abort,
}
LEASE_TTL = 5.0
# Judging a window reads the counters published since it opened, and this many seconds
# before (publish period and clock slack); older rows keep their baseline (no change).
RECENT = 5.0


@dataclass(slots=True)
class _Window:
    """The counters of every replica when a step's window opened, and as last seen."""

    start: float  # the state's window_start
    opened: float  # this process's clock when the baseline was taken
    before: dict[str, Counts]  # instance id -> counters
    seen: dict[str, Counts]


def default_holder() -> str:
    """This process's name in the driver lease: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
        holder: str | None = None,
        lease_ttl: float = LEASE_TTL,
        instance: str | None = None,
    ) -> None:
        self.store, self.config, self.snapshot = store, config, snapshot
        self.shadow = shadow or _no_shadow
        self.clock = clock
        self.holder = holder or default_holder()
        self.lease_ttl = lease_ttl
        self.instance = instance or f"{self.holder}:{uuid.uuid4().hex[:8]}"
        self.leading = False
        self._windows: dict[str, _Window] = {}
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
        self.driving = registry.gauge(
            "strangler_rollout_driving",
            "1 when this gateway holds the lease and judges the rollouts, else 0.",
            ("holder",),
        )
        self.driving.set((self.holder,), 0)

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
        """Publish this replica's counters; judge every progressing rollout whose window is
        due, when this process holds the lease; otherwise only show the stored weights."""
        await self._publish()
        leading = await self.store.lead(self.holder, self.lease_ttl)
        if leading != self.leading:
            log.info(
                json.dumps({"event": "rollout_driver", "holder": self.holder, "leads": leading})
            )
            self.leading = leading
            self.driving.set((self.holder,), int(leading))
            self._windows.clear()
        if not leading:
            for state, _ in (await self.store.all()).values():
                self.weight.set((state.route, state.backend), state.weight)
            return
        now = self.clock()
        for route in self.config().routes:
            if route.rollout is not None:
                await self._judge(route, now)

    async def _publish(self) -> None:
        """This replica's merged worker counters of every route with a rollout block."""
        names = [route.name for route in self.config().routes if route.rollout is not None]
        if names:
            snapshot = self.snapshot()
            await self.store.publish(self.instance, {n: counts(snapshot, n) for n in names})

    async def _judge(self, route: Route, now: float) -> None:
        """Open the route's window, or judge it on every replica's counters since."""
        assert route.rollout is not None
        stored = await self.store.get(route.name)
        if stored is None or stored[0].phase != PROGRESSING:
            self._windows.pop(route.name, None)
            if stored is not None:
                self.weight.set((route.name, stored[0].backend), stored[0].weight)
            return
        state, version = stored
        self.weight.set((state.route, state.backend), state.weight)
        window = self._windows.get(route.name)
        if window is None or window.start != state.window_start:
            # A window this process has no baseline for opens here (e.g. after a restart).
            before = await self.store.counters(route.name, COUNTERS_RETENTION)
            self._windows[route.name] = _Window(state.window_start, now, before, dict(before))
            return
        since = max(0.0, now - window.opened) + RECENT
        window.seen.update(await self.store.counters(route.name, since))
        tally = await self.shadow(route.name, state.window_start)
        judged = evidence(across(window.before, window.seen), tally)
        new = apply(state, route.rollout, Tick(now, judged))
        if new != state:
            await self._save(state, new, version, "tick")
            if new.window_start != state.window_start:
                seen = dict(window.seen)
                self._windows[route.name] = _Window(new.window_start, now, seen, dict(seen))

    async def resign(self) -> None:
        """Give the lease up (on shutdown) so another replica drives at once."""
        if self.leading:
            self.leading = False
            self.driving.set((self.holder,), 0)
            await self.store.resign(self.holder)

    async def close(self) -> None:
        """Close the stores it reads (an open SQLite connection's thread would keep the
        process from exiting)."""
        await self.store.close()
        closing = getattr(self.shadow, "close", None)
        if closing is not None:
            await closing()

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
                        "by": self.holder,
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
        driver = await self.store.leader()
        for route in routes:
            state, version = await self._load(route)
            assert route.rollout is not None
            shown = state.to_json()
            shown["steps"] = [s.weight for s in route.rollout.steps]
            shown["version"] = version
            shown["driver"] = driver
            out.append(shown)
        return out
