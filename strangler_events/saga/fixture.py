"""Given-when-then for sagas (pure; :mod:`strangler_events.testing` re-exports it).

    checkout = SagaFixture(CHECKOUT)
    checkout.given(placed).when(reserved).then_commands("ProcessPayment")
    checkout.given(placed, reserved).when(declined).then_commands(
        {"type": "ReleaseInventory", "topic": "inventory.commands"})
    checkout.given(placed).when_time_passes(30).then_commands("ReserveInventory")
    checkout.given(placed, reserved, paid).when(shipped).then_state("completed")

``given`` replays events through the state machine (the first one starts the instance);
``when`` applies one more event, ``when_time_passes(seconds)`` moves the clock.  Expected
commands are types, or mappings of the fields to compare (``type``, ``topic``, ``key``,
``payload`` and ``headers``: the fields given); message ids are generated and never
compared.  Failures are :class:`AssertionError` tables from :mod:`strangler_events.difference`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strangler_events.difference import event_mismatch, value_mismatch
from strangler_events.envelope import Event
from strangler_events.saga import machine
from strangler_events.saga.definition import SagaDefinition
from strangler_events.saga.instance import Decision, Instance

START_TIME = 1_000_000.0


class SagaFixture:
    """A saga definition under test; ``now`` is where the test clock starts."""

    def __init__(self, definition: SagaDefinition, now: float = START_TIME) -> None:
        self.definition = definition
        self.now = now

    def given(self, *events: Event) -> SagaGiven:
        """The instance after ``events`` (each applied one second after the previous)."""
        d, now, inst = self.definition, self.now, None
        for number, event in enumerate(events, 1):
            decision = _apply(d, inst, event, now)
            if decision.instance is None:
                raise AssertionError(
                    f"given event #{number} {event.type} {event.id} was not applied: "
                    f"{decision.ignored}"
                )
            inst = decision.instance
            inst.version += 1
            now += 1.0
        return SagaGiven(d, inst, now - 1.0 if events else now)


def _apply(d: SagaDefinition, inst: Instance | None, event: Event, now: float) -> Decision:
    if inst is None:
        return machine.start(d, event, now)
    return machine.on_reply(d, inst, event, now)


class SagaGiven:
    """An instance (None before the start event) at a point in test time."""

    def __init__(self, definition: SagaDefinition, instance: Instance | None, now: float) -> None:
        self.definition = definition
        self.instance = instance
        self.now = now

    def when(self, event: Event) -> SagaOutcome:
        """``event`` arrives one second after the last given one."""
        decision = _apply(self.definition, self.instance, event, self.now + 1.0)
        return SagaOutcome(self.instance, decision)

    def when_time_passes(self, seconds: float) -> SagaOutcome:
        """The clock moves to ``seconds`` after the last given event."""
        if self.instance is None:
            raise AssertionError("when_time_passes needs an instance: give the start event")
        decision = machine.on_time(self.definition, self.instance, self.now + seconds)
        return SagaOutcome(self.instance, decision)


class SagaOutcome:
    """What the saga decided: the commands it sends and the state it is in."""

    def __init__(self, before: Instance | None, decision: Decision) -> None:
        self.before = before
        self.decision = decision
        self.commands = decision.messages
        self.instance = decision.instance if decision.instance is not None else before

    def then_commands(self, *expected: str | Mapping[str, Any]) -> SagaOutcome:
        """It sent exactly these commands (or events, e.g. on completion), in order."""
        if not expected:
            raise TypeError("then_commands() needs a command; use then_no_commands() for none")
        wanted: list[dict[str, Any]] = [
            {"type": e} if isinstance(e, str) else dict(e) for e in expected
        ]
        sent: list[dict[str, Any]] = [
            {"type": m.type, "topic": m.topic, "key": m.key, "payload": m.payload}
            | {"headers": m.headers}
            for m in self.commands
        ]
        for want, got in zip(wanted, sent, strict=False):
            for part in ("payload", "headers"):  # the fields given, only
                if isinstance(want.get(part), Mapping):
                    got[part] = {k: v for k, v in got[part].items() if k in want[part]}
        title = "The saga did not send the expected commands"
        if self.decision.ignored is not None:
            title += f" (it ignored the event: {self.decision.ignored})"
        report = event_mismatch(wanted, sent, title=title)
        if report is not None:
            raise AssertionError(report)
        return self

    def then_no_commands(self) -> SagaOutcome:
        if self.commands:
            sent = ", ".join(m.type for m in self.commands)
            raise AssertionError(f"Expected no commands, but the saga sent: {sent}")
        return self

    def then_state(self, state: str) -> SagaOutcome:
        """The instance is in ``state`` (running, compensating, completed, ...)."""
        actual = None if self.instance is None else self.instance.state
        report = value_mismatch(state, actual, "The saga instance is not in the expected state")
        if report is not None:
            reason = "" if self.instance is None else f" (reason: {self.instance.reason})"
            raise AssertionError(report + reason)
        return self

    def then_ignored(self, match: str | None = None) -> SagaOutcome:
        """The saga changed nothing (a duplicate, a stale reply); ``match`` is a
        substring of the reason it gives."""
        why = self.decision.ignored
        if why is None:
            raise AssertionError(
                f"Expected the event to be ignored, but the saga moved to "
                f"{self.decision.instance.state if self.decision.instance else '?'}"
            )
        if match is not None and match not in why:
            raise AssertionError(f"The event was ignored because {why!r}, not {match!r}")
        return self
