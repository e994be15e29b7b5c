"""Event versioning (pure): upcasters turn an old payload into the current one before a
handler sees it.

    >>> up = Upcasters()
    >>> @up.register("UserRegistered", 1)
    ... def v1_to_v2(payload):
    ...     return {**payload, "profile": {"name": "Unknown"}}
    >>> e = Event("1", "UserRegistered", "user", "7", {"email": "a@b"}, schema_version=1)
    >>> up.upcast(e).payload
    {'email': 'a@b', 'profile': {'name': 'Unknown'}}

A type's current version is one more than its last registered step (1 without
steps).  An event newer than that raises :class:`TooNew`: the consumer
dead-letters it with the reason rather than guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strangler_events.envelope import Event

Step = Callable[[Any], Any]


class TooNew(Exception):
    """An event version this service does not know yet."""


class Upcasters:
    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Step]] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Step], Step]:
        """Decorator: ``fn(payload) -> payload`` upgrades ``from_version`` to the next."""

        def add(fn: Step) -> Step:
            steps = self._steps.setdefault(event_type, {})
            if from_version in steps:
                raise ValueError(f"{event_type} v{from_version} already has an upcaster")
            steps[from_version] = fn
            return fn

        return add

    def current(self, event_type: str) -> int:
        steps = self._steps.get(event_type)
        return max(steps) + 1 if steps else 1

    def upcast(self, event: Event) -> Event:
        current = self.current(event.type)
        if event.schema_version > current:
            raise TooNew(
                f"{event.type} schema_version {event.schema_version} is newer than this "
                f"consumer knows (up to {current})"
            )
        steps = self._steps.get(event.type, {})
        payload = event.payload
        for version in range(event.schema_version, current):
            step = steps.get(version)
            if step is None:
                raise TooNew(f"{event.type}: no upcaster from v{version} to v{version + 1}")
            payload = step(payload)
        if current == event.schema_version:
            return event
        return event.upgraded(current, payload)
