"""The example payment service: charges an order, or declines it, and refunds.

It declines a configurable card number (``decline_cards``) or any amount at or above
``decline_over``.  Idempotent per order: a payment already decided for an order is
answered again as decided; a refund of what was not charged (any more) is confirmed
without an effect.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Final

from examples.checkout import ledger
from strangler_events.database.port import Tx
from strangler_events.envelope import Event
from strangler_events.saga.participant import Action, Reply

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS payments (
    order_id   TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    amount     DOUBLE PRECISION NOT NULL,
    state      TEXT NOT NULL
);
"""
DECLINED_CARD: Final = "4000000000000002"


class Payment:
    def __init__(
        self, decline_cards: Collection[str] = (DECLINED_CARD,), decline_over: float | None = None
    ) -> None:
        self.decline_cards = set(decline_cards)
        self.decline_over = decline_over

    def actions(self) -> dict[str, Action]:
        return {"ProcessPayment": self.process, "RefundPayment": self.refund}

    def declines(self, card: str, amount: float) -> str | None:
        """Why this payment is declined, None when it is not."""
        if card in self.decline_cards:
            return f"card {card[-4:]} declined"
        if self.decline_over is not None and amount >= self.decline_over:
            return f"amount {amount:.2f} over the limit {self.decline_over:.2f}"
        return None

    async def process(self, command: Event, tx: Tx) -> Reply:
        p = command.payload if isinstance(command.payload, dict) else {}
        order, card, amount = str(p["order_id"]), str(p.get("card", "")), float(p["amount"])
        known = await tx.fetch("SELECT payment_id, state FROM payments WHERE order_id = ?", order)
        if known:
            await ledger.record(tx, "payment", command, "already " + str(known[0][1]))
            if known[0][1] == "declined":
                return Reply("PaymentFailed", {"reason": "declined before"})
            return Reply("PaymentProcessed", {"payment_id": str(known[0][0])})
        reason = self.declines(card, amount)
        payment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"payment/{order}"))
        state = "declined" if reason else "charged"
        await tx.execute(
            "INSERT INTO payments (order_id, payment_id, amount, state) VALUES (?, ?, ?, ?)",
            order,
            payment_id,
            amount,
            state,
        )
        await ledger.record(tx, "payment", command, state)
        if reason:
            return Reply("PaymentFailed", {"reason": reason})
        return Reply("PaymentProcessed", {"payment_id": payment_id})

    async def refund(self, command: Event, tx: Tx) -> Reply:
        p = command.payload if isinstance(command.payload, dict) else {}
        order = str(p["order_id"])
        refunded = await tx.execute(
            "UPDATE payments SET state = 'refunded' WHERE order_id = ? AND state = 'charged'", order
        )
        await ledger.record(tx, "payment", command, "refunded" if refunded else "nothing charged")
        return Reply("PaymentRefunded", {})
