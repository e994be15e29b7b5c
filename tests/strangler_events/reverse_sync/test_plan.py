"""Which events the reverse sync writes back, and how (pure)."""

from __future__ import annotations

import doctest

import pytest

import strangler_events.reverse_sync.plan
from strangler_events.envelope import Event
from strangler_events.reverse_sync.plan import SyncError, SyncTarget, Write, plan

TARGET = SyncTarget(
    "order",
    "http://legacy/api/orders/{id}",
    "order-service",
    upserts=("OrderCreated", "OrderUpdated"),
    deletes=("OrderDeleted",),
)
MINE = {"source": "order-service"}


def event(kind: str, payload: object = None, **changes: object) -> Event:
    fields: dict[str, object] = {
        "id": "e1",
        "type": kind,
        "aggregatetype": "order",
        "aggregateid": "7",
        "payload": payload,
        "metadata": MINE,
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def test_the_doctest() -> None:
    assert doctest.testmod(strangler_events.reverse_sync.plan).failed == 0


def test_upserts_put_the_state_and_deletes_delete() -> None:
    order = {"id": 7, "status": "paid"}
    updated = event("OrderUpdated", {"request": {"status": "paid"}, "response": order})
    assert plan(updated, TARGET) == Write("PUT", "http://legacy/api/orders/7", order, "e1")
    deleted = event("OrderDeleted", {})
    assert plan(deleted, TARGET) == Write("DELETE", "http://legacy/api/orders/7", None, "e1")


def test_the_legacy_systems_own_writes_are_never_sent_back() -> None:
    state = {"response": {"id": 7}}
    for source in ("gateway", "trigger", None):
        meta = {} if source is None else {"source": source}
        assert plan(event("OrderCreated", state, metadata=meta), TARGET) is None
    assert plan(event("OrderCreated", state, aggregatetype="user"), TARGET) is None
    assert plan(event("OrderShipped", state), TARGET) is None


def test_the_id_is_quoted_into_the_url() -> None:
    write = plan(event("OrderDeleted", None, aggregateid="a/b c"), TARGET)
    assert write is not None and write.url == "http://legacy/api/orders/a%2Fb%20c"


def test_what_cannot_be_planned_says_why() -> None:
    with pytest.raises(SyncError, match=r"payload has no 'response' object.*keys: \['row'\]"):
        plan(event("OrderCreated", {"row": {}}), TARGET)
    with pytest.raises(SyncError, match="no \\{id\\} placeholder"):
        SyncTarget("order", "http://legacy/api/orders", "s", upserts=("A",))
    with pytest.raises(SyncError, match="OrderX both upsert and delete"):
        SyncTarget("order", "http://x/{id}", "s", upserts=("OrderX",), deletes=("OrderX",))
    with pytest.raises(SyncError, match="names no event types"):
        SyncTarget("order", "http://x/{id}", "s")
    assert TARGET.event_types == ("OrderCreated", "OrderUpdated", "OrderDeleted")
