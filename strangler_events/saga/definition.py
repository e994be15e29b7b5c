"""What a saga is, written as plain Python (pure: no I/O).

A :class:`SagaDefinition` names the event that starts an instance, the payload field
that correlates later events with it, and the steps in order.  Each :class:`Step`
sends a :class:`Command` to a participant (through the outbox, to the topic of its
``topic`` category), waits for a reply event that completes it or fails it, may time
out (then it is sent again per its :class:`Retry` before it counts as failed), and
names the :class:`Compensation` that undoes it::

    checkout = SagaDefinition(
        name="checkout",
        start="OrderPlaced",
        key="order_id",
        steps=(
            Step("reserve", Command("ReserveInventory", "inventory.commands"),
                 completed_by=("InventoryReserved",), failed_by=("InventoryUnavailable",),
                 timeout=10.0,
                 compensation=Compensation(Command("ReleaseInventory", "inventory.commands"),
                                           confirmed_by=("InventoryReleased",))),
            ...
        ),
        listens_to=("orders", "inventory.replies", "payment.replies", "shipping.replies"),
    )

A failing reply is definitive (a declined card is not sent again); a timeout is retried
per the step's policy.  A compensation is retried with backoff after a failing reply
or a timeout, and after its last attempt the instance is parked for a person.
``unmatched`` says what happens to a reply for no instance: ``"count"`` (ignored and
counted in ``strangler_saga_unmatched_total``) or ``"dead-letter"`` (sent to the
dead-letter topic); it is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

UNMATCHED_POLICIES: Final = ("count", "dead-letter")

PayloadOf = Callable[[Mapping[str, Any]], dict[str, Any]]


class DefinitionError(ValueError):
    """A saga definition that cannot run (names what is wrong)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How many times a message is sent in all (``attempts``, the first included), and
    the wait before attempt n+1: ``backoff * factor**(n-1)``, at most ``max_backoff``."""

    attempts: int = 1
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed."""
        return float(min(self.max_backoff, self.backoff * self.factor ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class Command:
    """A message to a participant: its type, the outbox category of its topic (the
    relay's ``events.{aggregate}`` template makes ``inventory.commands`` the topic
    ``events.inventory.commands``), and its payload built from the instance's data
    (default: the data itself, i.e. the start event's payload and what replies added)."""

    type: str
    topic: str
    payload: PayloadOf | None = None

    def build(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data) if self.payload is None else self.payload(data)


@dataclass(frozen=True, slots=True)
class Compensation:
    """What undoes a completed step: its command, the replies that confirm or fail it,
    an optional timeout per attempt and the retry policy before the instance is parked."""

    command: Command
    confirmed_by: tuple[str, ...]
    failed_by: tuple[str, ...] = ()
    timeout: float | None = None
    retry: Retry = field(default_factory=lambda: Retry(attempts=5, backoff=1.0))


@dataclass(frozen=True, slots=True)
class Step:
    """One step: its command, the replies that complete or fail it, an optional timeout,
    the sends before a timed-out step counts as failed, and its compensation."""

    name: str
    command: Command
    completed_by: tuple[str, ...]
    failed_by: tuple[str, ...] = ()
    timeout: float | None = None
    retry: Retry = field(default_factory=Retry)
    compensation: Compensation | None = None


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """A saga: how it starts, how events find an instance, its steps, and what it tells
    the world when it ends (``on_completed``/``on_compensated``/``on_parked``: events
    sent through the outbox like commands; optional)."""

    name: str
    start: str
    key: str
    steps: tuple[Step, ...]
    listens_to: tuple[str, ...]
    unmatched: str = "count"
    on_completed: Command | None = None
    on_compensated: Command | None = None
    on_parked: Command | None = None

    def __post_init__(self) -> None:
        validate(self)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"saga {self.name!r} has no step {name!r}")

    def reply_types(self) -> set[str]:
        """Every event type a running instance can receive."""
        types: set[str] = set()
        for s in self.steps:
            types.update(s.completed_by, s.failed_by)
            if s.compensation is not None:
                types.update(s.compensation.confirmed_by, s.compensation.failed_by)
        return types

    def correlate(self, payload: object) -> str | None:
        """The instance key an event's payload names, None when it names none."""
        if not isinstance(payload, Mapping):
            return None
        value = payload.get(self.key)
        if value is None or isinstance(value, dict | list) or value == "":
            return None
        return str(value)


def _positive(value: float | None, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise DefinitionError(f"{what} must be a positive number of seconds, got {value!r}")


def _retry(retry: Retry, what: str) -> None:
    if isinstance(retry.attempts, bool) or not isinstance(retry.attempts, int):
        raise DefinitionError(f"{what}: retry attempts must be an integer >= 1")
    if retry.attempts < 1:
        raise DefinitionError(f"{what}: retry attempts must be >= 1, got {retry.attempts}")
    if retry.backoff < 0 or retry.factor < 1 or retry.max_backoff < 0:
        raise DefinitionError(
            f"{what}: retry backoff {retry.backoff} (>= 0), factor {retry.factor} (>= 1) and "
            f"max_backoff {retry.max_backoff} (>= 0) are not all valid"
        )


def validate(d: SagaDefinition) -> None:
    """Refuse a definition that could not run, naming what is wrong."""
    if not d.name or not d.start or not d.key:
        raise DefinitionError("a saga needs a name, a start event type and a key field")
    if not d.steps:
        raise DefinitionError(f"saga {d.name!r} has no steps")
    if d.unmatched not in UNMATCHED_POLICIES:
        raise DefinitionError(
            f"saga {d.name!r}: unmatched={d.unmatched!r}, expected one of {UNMATCHED_POLICIES}"
        )
    if not d.listens_to:
        raise DefinitionError(f"saga {d.name!r}: listens_to names no topic category")
    names = [s.name for s in d.steps]
    if len(set(names)) != len(names):
        raise DefinitionError(f"saga {d.name!r}: step names repeat: {names}")
    seen: dict[str, str] = {}
    for s in d.steps:
        what = f"saga {d.name!r} step {s.name!r}"
        if not s.completed_by:
            raise DefinitionError(f"{what}: completed_by names no reply type")
        _positive(s.timeout, f"{what}: timeout")
        _retry(s.retry, what)
        types = [*s.completed_by, *s.failed_by]
        if s.compensation is not None:
            if not s.compensation.confirmed_by:
                raise DefinitionError(f"{what}: its compensation names no confirming reply")
            _positive(s.compensation.timeout, f"{what}: compensation timeout")
            _retry(s.compensation.retry, f"{what} compensation")
            types += [*s.compensation.confirmed_by, *s.compensation.failed_by]
        for t in types:
            if t in seen or t == d.start:
                other = seen.get(t, "the start event")
                raise DefinitionError(
                    f"{what}: reply type {t!r} is also used by {other}; each reply type must "
                    "say one thing"
                )
            seen[t] = f"step {s.name!r}"
