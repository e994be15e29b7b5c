"""The example shipping service: ships an order once (idempotent per order)."""

from __future__ import annotations

from typing import Final

from examples.checkout import ledger
from strangler_events.database.port import Tx
from strangler_events.envelope import Event
from strangler_events.saga.participant import Action, Reply

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS shipments (
    order_id TEXT PRIMARY KEY,
    address  TEXT NOT NULL
);
"""


class Shipping:
    def actions(self) -> dict[str, Action]:
        return {"ShipOrder": self.ship}

    async def ship(self, command: Event, tx: Tx) -> Reply:
        p = command.payload if isinstance(command.payload, dict) else {}
        order = str(p["order_id"])
        new = await tx.execute(
            "INSERT INTO shipments (order_id, address) VALUES (?, ?) ON CONFLICT DO NOTHING",
            order,
            str(p.get("address", "")),
        )
        await ledger.record(tx, "shipping", command, "shipped" if new else "already shipped")
        return Reply("OrderShipped", {"tracking": f"TRK-{order}"})
