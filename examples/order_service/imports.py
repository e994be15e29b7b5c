"""The import of the monolith's captured order writes into the service's event store.

While the monolith writes orders (before cut-over, and again after a rollback), each of
its order writes reaches the service as a captured event -- from the gateway's capture
rules (payload ``{"request": ..., "response": order}``) or from the database triggers
(``{"row": order, "before": ...}``).  The import appends each one to the order's stream
as the Order aggregate's own event (:mod:`examples.order_service.order`), so the
aggregate knows every order the monolith has: a shadowed dry-run write is decided on
the monolith's state, and after cut-over the service carries on with the orders the
monolith created.  The monolith's writes are the truth here, so they are appended at
whatever version the stream is (``ANY``): nothing is refused.

Idempotent twice over: the appended event's id is derived from the captured event's id
(a uuid5), and the store takes an append of ids it already holds as a retry (no second
copy); the consumer's inbox (group ``order-service-import``) records what was done.

Skipped: the service's own events (metadata ``source: order-service``, which the store
holds already, published back through the outbox) and events of other types.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from examples.order_service.writes import SOURCE
from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event
from strangler_events.eventstore import ANY, EventStore, NewEvent, stream_name
from strangler_events.projection import Projection

GROUP: Final = "order-service-import"
NAMESPACE: Final = uuid.UUID("5d1c6f0e-4f7b-4a8e-9a53-0e6f3c1b7a21")
TYPES: Final = ("OrderCreated", "OrderUpdated", "OrderDeleted")


def imported_id(event_id: str) -> str:
    """The store's id for a captured event: the same every time it is imported."""
    return str(uuid.uuid5(NAMESPACE, event_id))


def translate(event: Event) -> NewEvent | None:
    """The Order event for a captured one (None: the service's own, nothing to import)."""
    if event.metadata.get("source") == SOURCE:
        return None
    payload: Any = event.payload if isinstance(event.payload, dict) else {}
    meta = {"source": event.metadata.get("source", "legacy"), "causation_id": event.id}
    if event.type == "OrderDeleted":
        return NewEvent("OrderDeleted", {}, meta, imported_id(event.id))
    order = payload.get("response", payload.get("row"))
    if not isinstance(order, dict) or "id" not in order:
        raise ValueError(f"{event.type} {event.id}: payload has no order (response or row)")
    data = {"request": payload.get("request"), "response": order}
    return NewEvent(event.type, data, meta, imported_id(event.id))


def order_import(database: Database, store: EventStore) -> Projection:
    """The import as a consumer-driven projection (its inbox in ``database``)."""

    async def append(event: Event, tx: Tx) -> None:
        new = translate(event)
        if new is not None:
            await store.append(stream_name("order", event.aggregateid), [new], ANY)

    return Projection(
        name=GROUP,
        database=database,
        schema="SELECT 1;",
        reset_sql=[],
        forget_sql=[],
        handlers=dict.fromkeys(TYPES, append),
    )
