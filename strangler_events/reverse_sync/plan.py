"""What the reverse sync writes to the legacy system for one event (pure: no I/O).

    >>> target = SyncTarget("order", "http://legacy/api/orders/{id}", "order-service",
    ...                     upserts=("OrderCreated", "OrderUpdated"), deletes=("OrderDeleted",))
    >>> from strangler_events.envelope import Event
    >>> event = Event("e1", "OrderCreated", "order", "7", {"response": {"id": 7}},
    ...               metadata={"source": "order-service"})
    >>> plan(event, target)
    Write(method='PUT', url='http://legacy/api/orders/7', body={'id': 7}, event_id='e1')

An event is applied only when it is of the target's aggregate type and was written by
the target's ``source`` (its ``metadata.source``): events captured from the legacy
system itself, or imported from it, are its own writes and are never sent back.  An
upsert PUTs the state the event carries (``payload[state_key]``, the whole aggregate
after the change); a delete DELETEs.  Both are idempotent on the legacy side: applying
one again leaves the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from strangler_events.envelope import Event


class SyncError(ValueError):
    """An event the reverse sync cannot turn into a write (retrying will not help)."""


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """One aggregate type's reverse sync: ``url`` is the legacy API's item URL with
    ``{id}`` for the aggregate id."""

    aggregate: str
    url: str
    source: str
    upserts: tuple[str, ...] = ()
    deletes: tuple[str, ...] = ()
    state_key: str = "response"

    def __post_init__(self) -> None:
        if "{id}" not in self.url:
            raise SyncError(f"reverse sync URL {self.url!r} has no {{id}} placeholder")
        both = sorted(set(self.upserts) & set(self.deletes))
        if both:
            raise SyncError(f"event type(s) {', '.join(both)} both upsert and delete")
        if not (self.upserts or self.deletes):
            raise SyncError(f"reverse sync of {self.aggregate!r} names no event types")

    @property
    def event_types(self) -> tuple[str, ...]:
        return (*self.upserts, *self.deletes)


@dataclass(frozen=True, slots=True)
class Write:
    method: str
    url: str
    body: Any
    event_id: str


def plan(event: Event, target: SyncTarget) -> Write | None:
    """The write that applies ``event`` to the legacy system; None when it is not one to
    apply (another aggregate type, another writer, another event type)."""
    if event.aggregatetype != target.aggregate or event.metadata.get("source") != target.source:
        return None
    url = target.url.replace("{id}", quote(event.aggregateid, safe=""))
    if event.type in target.deletes:
        return Write("DELETE", url, None, event.id)
    if event.type not in target.upserts:
        return None
    payload = event.payload if isinstance(event.payload, dict) else {}
    state = payload.get(target.state_key)
    if not isinstance(state, dict):
        raise SyncError(
            f"{event.type} {event.id} of {event.aggregatetype} {event.aggregateid}: payload "
            f"has no {target.state_key!r} object to write (keys: {sorted(payload)})"
        )
    return Write("PUT", url, state, event.id)
