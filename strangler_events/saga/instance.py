"""A saga instance's state, the messages a transition emits, and the decision that holds
both (pure: no I/O).

An instance is plain data, stored as JSON (``to_json``/``from_json``) beside a few
columns the store indexes (state, deadline, version).  ``version`` is the stored
version the instance was read at (0: not stored yet); the store writes the next one
only if nobody else did first.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, Final

RUNNING: Final = "running"
COMPENSATING: Final = "compensating"
COMPLETED: Final = "completed"
COMPENSATED: Final = "compensated"
PARKED: Final = "parked"
STATES: Final = (RUNNING, COMPENSATING, COMPLETED, COMPENSATED, PARKED)
TERMINAL: Final = (COMPLETED, COMPENSATED, PARKED)

# The namespace of message ids: uuid5(saga/instance/step/kind/attempt), so recomputing
# a decision (after a version conflict) names the same messages.
NAMESPACE: Final = uuid.UUID("6f1c2a52-8a43-4c1e-9f3a-5a6d2f0e7b11")


@dataclass(slots=True)
class Instance:
    """One running (or finished) saga.

    ``step`` is the forward step in flight (running); ``done`` the steps whose effect
    happened, in order; ``pending`` the steps still to compensate, next first;
    ``compensating`` the step whose compensation is in flight; ``in_flight`` the id of
    the message awaited, ``attempt`` its attempt number, ``sent_at`` when it was sent;
    ``waiting`` True while a compensation waits out its backoff (``deadline`` is then
    the time to send it again)."""

    saga: str
    id: str
    state: str
    data: dict[str, Any]
    started_at: float
    updated_at: float
    version: int = 0
    step: int = 0
    attempt: int = 0
    in_flight: str | None = None
    sent_at: float = 0.0
    deadline: float | None = None
    waiting: bool = False
    done: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    compensating: int | None = None
    compensated: list[int] = field(default_factory=list)
    reason: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> str:
        # The fields are JSON values already: no asdict (its deep copy is the hot spot).
        body = {name: getattr(self, name) for name in _BODY}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, version: int) -> Instance:
        body = json.loads(text)
        return cls(**body, version=version)

    def copy(self) -> Instance:
        return Instance.from_json(self.to_json(), self.version)

    def note(self, at: float, kind: str, **detail: Any) -> None:
        """Add a timeline entry (``kind``: started, command, reply, timeout, ...)."""
        self.timeline.append({"at": at, "kind": kind, **detail})


_BODY: Final = tuple(f.name for f in fields(Instance) if f.name != "version")  # a column


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message a transition emits, for the outbox: ``topic`` is the outbox category
    (``aggregatetype``), ``key`` the record key (the instance id)."""

    id: str
    type: str
    topic: str
    key: str
    payload: dict[str, Any]
    headers: dict[str, Any]


def message_id(saga: str, instance: str, step: str, kind: str, attempt: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{saga}/{instance}/{step}/{kind}/{attempt}"))


@dataclass(frozen=True, slots=True)
class Fact:
    """Something a transition did that metrics count: ``kind`` is started, completed,
    compensated, parked, step (a step completed after ``seconds``), timeout, late."""

    kind: str
    step: str | None = None
    seconds: float | None = None


@dataclass(slots=True)
class Decision:
    """What a transition decided: the instance to store (None: nothing changed, see
    ``ignored`` for why), the messages to emit with it, and the facts to count."""

    instance: Instance | None
    messages: list[Outgoing] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    ignored: str | None = None

    @classmethod
    def nothing(cls, why: str) -> Decision:
        return cls(None, ignored=why)
