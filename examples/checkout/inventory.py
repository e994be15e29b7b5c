"""The example inventory service: reserves stock for an order and releases it.

Idempotent per order: a second ReserveInventory for an order that holds a reservation
answers InventoryReserved again without taking more stock, and releasing what is not
reserved (any more) answers InventoryReleased without adding any.  (The inbox already
makes a re-delivered command a no-op; this covers a command sent again after a timeout.)
``release_failures`` makes the next N releases fail (-1: all of them), to exercise the
saga's compensation retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from examples.checkout import ledger
from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event
from strangler_events.saga.participant import Action, Reply

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS inventory_stock (
    sku       TEXT PRIMARY KEY,
    available INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inventory_reservations (
    order_id TEXT PRIMARY KEY,
    sku      TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    state    TEXT NOT NULL
);
"""


def _order(command: Event) -> tuple[str, str, int]:
    p = command.payload if isinstance(command.payload, dict) else {}
    return str(p["order_id"]), str(p["sku"]), int(p.get("quantity", 1))


class Inventory:
    def __init__(self, release_failures: int = 0) -> None:
        self.release_failures = release_failures

    def actions(self) -> dict[str, Action]:
        return {"ReserveInventory": self.reserve, "ReleaseInventory": self.release}

    async def reserve(self, command: Event, tx: Tx) -> Reply:
        order, sku, quantity = _order(command)
        fresh = await tx.execute(  # the reservation first: one statement when it is new
            "INSERT INTO inventory_reservations (order_id, sku, quantity, state)"
            " VALUES (?, ?, ?, 'reserved') ON CONFLICT DO NOTHING",
            order,
            sku,
            quantity,
        )
        if not fresh:  # reserved already, or released (a reserve after its release)
            held = await tx.fetch(
                "SELECT state FROM inventory_reservations WHERE order_id = ?", order
            )
            if held and held[0][0] == "reserved":
                await ledger.record(tx, "inventory", command, "already reserved")
                return Reply("InventoryReserved", {"sku": sku, "quantity": quantity})
        taken = fresh and await tx.execute(
            "UPDATE inventory_stock SET available = available - ? WHERE sku = ? AND available >= ?",
            quantity,
            sku,
            quantity,
        )
        if not taken:  # out of stock (or released already)
            if fresh:
                await tx.execute("DELETE FROM inventory_reservations WHERE order_id = ?", order)
            await ledger.record(tx, "inventory", command, "unavailable")
            return Reply("InventoryUnavailable", {"sku": sku, "quantity": quantity})
        await ledger.record(tx, "inventory", command, "reserved")
        return Reply("InventoryReserved", {"sku": sku, "quantity": quantity})

    async def release(self, command: Event, tx: Tx) -> Reply:
        order, sku, _ = _order(command)
        if self.release_failures != 0:
            if self.release_failures > 0:
                self.release_failures -= 1
            await ledger.record(tx, "inventory", command, "release failed")
            return Reply("InventoryReleaseFailed", {"sku": sku, "error": "warehouse offline"})
        held = await tx.fetch(
            "SELECT quantity FROM inventory_reservations WHERE order_id = ? AND state = 'reserved'",
            order,
        )
        if held:
            await tx.execute(
                "UPDATE inventory_stock SET available = available + ? WHERE sku = ?",
                int(held[0][0]),
                sku,
            )
            await tx.execute(
                "UPDATE inventory_reservations SET state = 'released' WHERE order_id = ?", order
            )
        await ledger.record(tx, "inventory", command, "released" if held else "nothing held")
        return Reply("InventoryReleased", {"sku": sku})


async def stock(database: Database, levels: Mapping[str, int]) -> None:
    """Set the stock of each sku (creating the tables)."""
    await database.script(SCHEMA)
    async with database.transaction() as tx:
        for sku, available in levels.items():
            await tx.execute("DELETE FROM inventory_stock WHERE sku = ?", sku)
            await tx.execute(
                "INSERT INTO inventory_stock (sku, available) VALUES (?, ?)", sku, available
            )


async def ensure_stock(database: Database, levels: Mapping[str, int]) -> None:
    """Stock each sku that has no stock row yet (a restart keeps what is there)."""
    await database.script(SCHEMA)
    async with database.transaction() as tx:
        for sku, n in levels.items():
            await tx.execute(
                "INSERT INTO inventory_stock (sku, available) VALUES (?, ?) ON CONFLICT DO NOTHING",
                sku,
                n,
            )


async def available(database: Database) -> dict[str, int]:
    async with database.transaction() as tx:
        rows = await tx.fetch("SELECT sku, available FROM inventory_stock")
    return {str(s): int(n) for s, n in rows}
