"""The order read model: one row per order, built from OrderCreated / OrderUpdated /
OrderDeleted events (their payload carries the monolith's response: the whole order).

``applied`` counts the events applied to a row; a re-delivered event must not raise
it (the inbox's job), which is how the tests see double effects."""

from __future__ import annotations

from typing import Any

from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event
from strangler_events.projection import Projection

FIELDS = ("id", "customer", "item", "quantity", "status", "created_at", "updated_at")
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders_read (
    id         BIGINT PRIMARY KEY,
    customer   TEXT NOT NULL,
    item       TEXT NOT NULL,
    quantity   INTEGER NOT NULL,
    status     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    applied    INTEGER NOT NULL DEFAULT 1
);
"""
UPSERT = f"""
INSERT INTO orders_read ({", ".join(FIELDS)}) VALUES ({", ".join("?" * len(FIELDS))})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(f"{f} = excluded.{f}" for f in FIELDS[1:])},
    applied = orders_read.applied + 1
"""


def _order(event: Event) -> dict[str, Any]:
    payload = event.payload or {}
    order = payload.get("response") if isinstance(payload, dict) else None
    if not isinstance(order, dict) or "id" not in order:
        raise ValueError(f"{event.type} {event.id}: payload has no response order")
    return order


async def upsert(event: Event, tx: Tx) -> None:
    order = _order(event)
    await tx.execute(UPSERT, *(order.get(f) for f in FIELDS))


async def delete(event: Event, tx: Tx) -> None:
    await tx.execute("DELETE FROM orders_read WHERE id = ?", int(event.aggregateid))


def orders_projection(database: Database, name: str = "order-service") -> Projection:
    return Projection(
        name=name,
        database=database,
        schema=SCHEMA,
        reset_sql=["DELETE FROM orders_read"],
        forget_sql=["DELETE FROM orders_read WHERE CAST(id AS TEXT) = ?"],
        handlers={"OrderCreated": upsert, "OrderUpdated": upsert, "OrderDeleted": delete},
    )


async def all_orders(database: Database) -> list[dict[str, Any]]:
    async with database.transaction() as tx:
        rows = await tx.fetch(f"SELECT {', '.join(FIELDS)} FROM orders_read ORDER BY id")
    return [dict(zip(FIELDS, row, strict=True)) for row in rows]


async def one_order(database: Database, ident: int) -> dict[str, Any] | None:
    async with database.transaction() as tx:
        rows = await tx.fetch(f"SELECT {', '.join(FIELDS)} FROM orders_read WHERE id = ?", ident)
    return dict(zip(FIELDS, rows[0], strict=True)) if rows else None
