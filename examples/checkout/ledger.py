"""Every command a participant's handler ran, one row each: what the tests count to
prove each step reached its participant exactly once."""

from __future__ import annotations

import time
from typing import Final

from strangler_events.database.port import Database, Tx
from strangler_events.envelope import Event

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS checkout_ledger (
    service    TEXT NOT NULL,
    command    TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    command_id TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    at         DOUBLE PRECISION NOT NULL
);
"""


async def record(tx: Tx, service: str, command: Event, outcome: str) -> None:
    payload = command.payload if isinstance(command.payload, dict) else {}
    await tx.execute(
        "INSERT INTO checkout_ledger (service, command, order_id, command_id, outcome, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        service,
        command.type,
        str(payload.get("order_id", command.aggregateid)),
        command.id,
        outcome,
        time.time(),
    )


async def handled(database: Database) -> dict[tuple[str, str], int]:
    """How many times each (order, command) reached its handler."""
    async with database.transaction() as tx:
        rows = await tx.fetch(
            "SELECT order_id, command, count(*) FROM checkout_ledger GROUP BY order_id, command"
        )
    return {(str(o), str(c)): int(n) for o, c, n in rows}
