"""Placing an order: the OrderPlaced event that starts a checkout, written into the
outbox (an order service writes it in the transaction that stores the order)."""

from __future__ import annotations

import uuid
from typing import Any

from examples.checkout.saga import ORDERS
from strangler_events.database.port import Database
from strangler_events.saga import outbox
from strangler_events.saga.instance import Outgoing


def order_placed(order_id: str, **fields: Any) -> Outgoing:
    payload = {"order_id": order_id, **fields}
    ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-placed/{order_id}"))
    return Outgoing(ident, "OrderPlaced", ORDERS, order_id, payload, {"source": "checkout-demo"})


async def place(database: Database, *orders: Outgoing) -> None:
    """Write the OrderPlaced events into the outbox, in one transaction."""
    async with database.transaction() as tx:
        await outbox.write(tx, outbox.dialect(database.url), list(orders))
