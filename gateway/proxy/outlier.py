"""Outlier ejection: a backend failing N times in a row is ejected for a while.

The ejection time grows with each repeat (base x number of ejections so far,
capped at the maximum), as Envoy's outlier detection does, and shrinks back after
a backend stays healthy.  ``max_ejected_percent`` bounds how many of the
configured backends may be out at once (Envoy's ``max_ejection_percent``): past
it, a failing backend keeps serving.  Routing reads :meth:`Outliers.ejected`; the proxy
reports each attempt's outcome.  The clock is injected so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.config import Outlier

DEFAULT: Final = Outlier()


@dataclass(slots=True)
class _State:
    failures: int = 0
    times_ejected: int = 0
    until: float = 0.0


class Outliers:
    def __init__(
        self,
        settings: Mapping[str, Outlier | None],
        clock: Callable[[], float] = time.monotonic,
        on_ejected: Callable[[str], None] = lambda backend: None,
    ) -> None:
        self._settings = {name: s or DEFAULT for name, s in settings.items()}
        self._clock = clock
        self._on_ejected = on_ejected
        self._state: dict[str, _State] = {}
        self._ejected: frozenset[str] = frozenset()
        self._next_expiry = float("inf")

    def reconfigure(self, settings: Mapping[str, Outlier | None]) -> None:
        self._settings = {name: s or DEFAULT for name, s in settings.items()}

    def ejected(self) -> frozenset[str]:
        """Backends ejected right now (cheap: recomputed only when one expires)."""
        if self._ejected and self._clock() >= self._next_expiry:
            self._refresh()
        return self._ejected

    def success(self, backend: str) -> None:
        state = self._state.get(backend)
        if state is not None and state.failures:
            state.failures = 0

    def counted(self, backend: str, ok: bool) -> None:
        """An attempt's outcome at ``backend`` (ports.BackendHealth, for the WebSocket relay
        too): a success ends its failure streak; a failure may eject it."""
        if ok:
            self.success(backend)
        elif self.failure(backend):
            self._on_ejected(backend)

    def failure(self, backend: str) -> bool:
        """Count a failure; True when it ejected the backend."""
        settings = self._settings.get(backend, DEFAULT)
        state = self._state.setdefault(backend, _State())
        now = self._clock()
        if state.until > now:
            return False
        state.failures += 1
        if state.failures < settings.consecutive_failures:
            return False
        if self._over_limit(settings.max_ejected_percent):
            return False  # too many backends out already: this one keeps serving
        state.failures = 0
        state.times_ejected += 1
        period = min(settings.base_ejection * state.times_ejected, settings.max_ejection)
        state.until = now + period
        self._refresh()
        return True

    def _over_limit(self, max_percent: int) -> bool:
        """Whether ejecting one more backend would take more than ``max_percent`` of the
        configured backends out of service at once."""
        if max_percent >= 100:
            return False
        out = len(self.ejected()) + 1
        return out * 100 > max_percent * max(len(self._settings), 1)

    def _refresh(self) -> None:
        now = self._clock()
        ejected = set()
        expiry = float("inf")
        for name, state in self._state.items():
            if state.until > now:
                ejected.add(name)
                expiry = min(expiry, state.until)
            elif (
                state.times_ejected
                and now - state.until > self._settings.get(name, DEFAULT).max_ejection
            ):
                state.times_ejected = 0  # healthy for a long while: start over
        self._ejected = frozenset(ejected)
        self._next_expiry = expiry
