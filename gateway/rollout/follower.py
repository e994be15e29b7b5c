"""Every worker follows the rollout weights in the shared store: it reads them about once a
second and hands a change to ``on_change`` (which rebuilds the routing table)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.rollout.store import RolloutStore, StoreError, weights_of
from gateway.rollout.weights import Weights

log = logging.getLogger("strangler.rollout")
PERIOD = 1.0


class Follower:
    def __init__(
        self, store: RolloutStore, on_change: Callable[[Weights], None], period: float = PERIOD
    ) -> None:
        self.store = store
        self.on_change = on_change
        self.period = period
        self.weights: dict[str, tuple[str, int]] = {}
        self._failing = False
        self._ready = False

    async def poll(self) -> bool:
        """Read the weights once; True when they changed (and were handed on)."""
        try:
            if not self._ready:
                await self.store.init()
                self._ready = True
            states = await self.store.all()
        except StoreError as exc:
            if not self._failing:
                log.error("rollout store unreadable, keeping the current weights: %s", exc)
            self._failing = True
            return False
        self._failing = False
        weights = weights_of(state for state, _ in states.values())
        if weights == self.weights:
            return False
        self.weights = weights
        self.on_change(weights)
        return True

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.period)
