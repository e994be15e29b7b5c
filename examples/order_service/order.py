"""The Order aggregate (pure): the order service's write side, deciding exactly as the
legacy monolith does (``examples/legacy_monolith/app.py``): the same validation
messages in the same order, the same defaults, the same order JSON.

    >>> order = Order("7")
    >>> [e.event_type for e in order.create({"customer": "ann", "item": "pen"}, "t0")]
    ['OrderCreated']
    >>> order.order["quantity"], order.order["status"], order.order["created_at"]
    (1, 'new', 't0')
    >>> order.update({"quantity": "two"}, "t1", partial=True)
    Traceback (most recent call last):
    ...
    examples.order_service.order.InvalidOrder: quantity must be an integer

Events carry what the gateway's capture records for the monolith's writes: the
request body and the order as it is afterwards (``{"request": ..., "response": ...}``;
``OrderDeleted`` carries nothing).  So one read model, one reverse sync and the import
of captured writes handle the events of both writers alike, whichever wrote them.

A request is checked before the order is looked up (an invalid body to an unknown id
is a 422, as in the monolith); a PUT or PATCH that sets no field records nothing and
answers the order unchanged.  ``now`` is given by the caller (the time of the write).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from strangler_events.aggregate import Aggregate, DomainEvent, applies, command

FIELDS: Final = ("customer", "item", "quantity", "status")
KEYS: Final = ("id", "customer", "item", "quantity", "status", "created_at", "updated_at")
REQUIRED: Final = ("customer", "item")
IGNORED: Final = frozenset({"id", "created_at", "updated_at"})
DEFAULTS: Final = {"quantity": 1, "status": "new"}


class OrderError(Exception):
    """A request the order refuses; ``status`` is the HTTP status the monolith answers."""

    status = 400

    @property
    def body(self) -> dict[str, str]:
        return {"error": str(self)}


class InvalidOrder(OrderError):
    status = 422


class OrderNotFound(OrderError):
    status = 404

    def __init__(self, ident: str) -> None:
        super().__init__(f"order {ident} not found")


class OrderExists(OrderError):
    """A create for an id that already has an order (an id handed out twice)."""

    status = 409

    def __init__(self, ident: str) -> None:
        super().__init__(f"order {ident} already exists")


def validate(body: Any, partial: bool) -> dict[str, Any]:
    """The fields a request body sets, or :class:`InvalidOrder` with the monolith's message."""
    if not isinstance(body, dict):
        raise InvalidOrder("expected a JSON object")
    unknown = sorted(set(body) - set(FIELDS) - IGNORED)
    if unknown:
        raise InvalidOrder(f"unknown field(s): {', '.join(unknown)}")
    values = {k: body[k] for k in FIELDS if k in body}
    missing = [k for k in REQUIRED if k not in values]
    if missing and not partial:
        raise InvalidOrder(f"missing field(s): {', '.join(missing)}")
    if "quantity" in values:
        if not isinstance(values["quantity"], int):
            raise InvalidOrder("quantity must be an integer")
        values["quantity"] = int(values["quantity"])  # a JSON true is stored as 1
    return values


@dataclass(frozen=True)
class OrderCreated(DomainEvent):
    request: Any
    response: dict[str, Any]


@dataclass(frozen=True)
class OrderUpdated(DomainEvent):
    request: Any
    response: dict[str, Any]


@dataclass(frozen=True)
class OrderDeleted(DomainEvent):
    pass


class Order(Aggregate):
    """One order; stream ``order-{id}``, the id being the order's integer id."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.order: dict[str, Any] | None = None
        self.deleted = False

    @command
    def create(self, body: Any, now: str) -> list[DomainEvent]:
        values = validate(body, partial=False)
        if self.order is not None or self.deleted:
            raise OrderExists(self.id)
        order = {**DEFAULTS, **values, "id": int(self.id), "created_at": now, "updated_at": now}
        return [OrderCreated(body, {k: order[k] for k in KEYS})]

    @command
    def update(self, body: Any, now: str, partial: bool) -> list[DomainEvent]:
        """PUT (``partial=False``: customer and item required) or PATCH."""
        values = validate(body, partial)
        if self.order is None:
            raise OrderNotFound(self.id)
        if not values:
            return []
        return [OrderUpdated(body, {**self.order, **values, "updated_at": now})]

    @command
    def delete(self) -> list[DomainEvent]:
        if self.order is None:
            raise OrderNotFound(self.id)
        return [OrderDeleted()]

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.order = dict(event.response)
        self.deleted = False

    @applies(OrderUpdated)
    def _updated(self, event: OrderUpdated) -> None:
        self.order = dict(event.response)

    @applies(OrderDeleted)
    def _deleted(self, event: OrderDeleted) -> None:
        self.order = None
        self.deleted = True
