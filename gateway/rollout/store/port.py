"""The rollout store port: one row per route holding its :class:`State` (phase, step,
the new backend's weight, every judged step with its evidence) and a version.

``put`` is a compare-and-set on that version, so two processes driving the same route
cannot overwrite each other's transition unseen; :class:`Conflict` says it happened.

Only one process judges rollouts and moves weights (the driver): it holds a lease, one row
naming the holder and when it expires, which it renews every tick (``lead``).  Other
gateway replicas only follow the store; one of them takes over once the lease expires, or
at once when the holder resigns on shutdown.

Every replica also publishes its own counters of the routes under rollout about once a
second (``publish``: one row per replica instance and route, stamped with the store's
clock), so that the driver judges the traffic of every replica, not only its own
(``counters``; the summing is :func:`gateway.rollout.evidence.across`).  Rows no replica
refreshed for :data:`COUNTERS_RETENTION` seconds are removed by the next ``publish``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from gateway.rollout.evidence import Counts
from gateway.rollout.machine import PENDING, State

COUNTERS_RETENTION = 86400.0  # seconds a replica's last counters stay after it went


class StoreError(Exception):
    """The rollout store failed or cannot be reached."""


class Conflict(StoreError):
    """Someone else changed the route's rollout since it was read."""


class RolloutStore(Protocol):
    url: str

    async def init(self) -> None:
        """Create the table if it does not exist."""

    async def get(self, route: str) -> tuple[State, int] | None:
        """The route's state and its version; None when it never started."""
        ...

    async def all(self) -> dict[str, tuple[State, int]]:
        """Every route's state and version."""
        ...

    async def put(self, state: State, version: int) -> int:
        """Store ``state`` if the stored version is still ``version`` (0: none stored);
        the new version, else :class:`Conflict`."""
        ...

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the driver's lease for ``ttl`` seconds; True when ``holder``
        holds it now, False while another holder's lease has not expired."""
        ...

    async def leader(self) -> str | None:
        """Who holds an unexpired lease; None when nobody drives."""
        ...

    async def resign(self, holder: str) -> None:
        """Give the lease up (when ``holder`` has it) so another replica takes over now."""

    async def publish(self, instance: str, counters: Mapping[str, Counts]) -> None:
        """Store replica ``instance``'s counters per route, replacing what it published
        before; remove rows older than :data:`COUNTERS_RETENTION`."""

    async def counters(self, route: str, max_age: float) -> dict[str, Counts]:
        """Every replica's last counters of ``route`` published in the last ``max_age``
        seconds (by the store's clock), by instance id."""
        ...

    async def close(self) -> None: ...


def weights_of(states: Iterable[State]) -> dict[str, tuple[str, int]]:
    """Route -> (new backend, its weight) for every rollout that moved weight."""
    return {s.route: (s.backend, s.weight) for s in states if s.phase != PENDING}
