"""Crash drills for the checkout saga process: SIGKILL itself at a chosen point of a
step, to prove a restart neither loses nor repeats a command.

``--kill-at POINT:STEP`` with POINT one of

- ``in-transaction``: the step's command and the new state are written, not committed;
- ``before-publish``: committed; the relay is about to hand the command to the broker;
- ``after-publish``: the broker acknowledged the command; the relay has not marked it
  published (so it is published again after the restart).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.capture.kafka_sink import PublishError
from gateway.capture.relay import Sink
from gateway.capture.rules import Event
from strangler_events.saga.definition import SagaDefinition
from strangler_events.saga.instance import Decision

POINTS: Final = ("in-transaction", "before-publish", "after-publish")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class KillPoint:
    """Where to die: ``point`` of the step whose command is ``command`` (its type) sent
    to ``topic`` (the relay sees types and categories, not the saga's headers)."""

    point: str
    command: str
    topic: str

    @classmethod
    def parse(cls, text: str, definition: SagaDefinition) -> KillPoint:
        point, _, step = text.partition(":")
        if point not in POINTS or not step:
            raise ValueError(f"--kill-at {text!r}: expected POINT:STEP, POINT one of {POINTS}")
        command = definition.step(step).command
        return cls(point, command.type, command.topic)

    def sends(self, kind: str, topic: str) -> bool:
        return kind == self.command and topic == self.topic

    async def before_commit(self, decision: Decision) -> None:
        """The store's hook: die inside the transaction that sends the step's command."""
        sends = any(self.sends(m.type, m.topic) for m in decision.messages)
        if self.point == "in-transaction" and sends:
            die()

    def sink(self, inner: Sink) -> Sink:
        return KillingSink(inner, self)


class KillingSink:
    """The relay's sink, dying before or after publishing the step's command."""

    def __init__(self, inner: Sink, kill: KillPoint) -> None:
        self.inner = inner
        self.kill = kill

    def _has_command(self, events: Sequence[Event]) -> bool:
        return any(self.kill.sends(e.type, e.aggregatetype) for e in events)

    async def send(self, events: Sequence[Event]) -> Any:
        if self.kill.point == "before-publish" and self._has_command(events):
            die()
        return (await self.inner.send(events), self._has_command(events))

    async def collect(self, handle: Any) -> list[PublishError | None]:
        inner, has = handle
        results = await self.inner.collect(inner)
        if self.kill.point == "after-publish" and has and not any(results):
            die()
        return results

    async def stop(self) -> None:
        await self.inner.stop()
