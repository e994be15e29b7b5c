"""The checkout saga, as a definition (plain data; see :mod:`strangler_events.saga`).

    OrderPlaced -> ReserveInventory (inventory) -> ProcessPayment (payment) -> ShipOrder
    PaymentFailed -> ReleaseInventory -> OrderCancelled

Commands go to ``{participant}.commands`` categories, replies come back on
``{participant}.replies``; with the relay's ``events.{aggregate}`` template those are
the topics ``events.inventory.commands``, ``events.inventory.replies``, ...  The saga
tells the world how each checkout ended on ``checkout`` (``OrderConfirmed``,
``OrderCancelled``, ``CheckoutParked``).
"""

from __future__ import annotations

from strangler_events.saga import Command, Compensation, Retry, SagaDefinition, Step

NAME = "checkout"
ORDERS = "orders"  # where OrderPlaced comes from
CATEGORIES = {
    "inventory": ("inventory.commands", "inventory.replies"),
    "payment": ("payment.commands", "payment.replies"),
    "shipping": ("shipping.commands", "shipping.replies"),
}


def checkout_saga(
    step_timeout: float | None = 30.0,
    step_retry: Retry | None = None,
    compensation_timeout: float | None = 30.0,
    compensation_retry: Retry | None = None,
) -> SagaDefinition:
    """The checkout saga; tests shorten the timeouts and backoffs."""
    retry = step_retry or Retry(attempts=1)
    undo = compensation_retry or Retry(attempts=5, backoff=0.5, factor=2.0, max_backoff=10.0)
    inventory, payment, shipping = (CATEGORIES[p][0] for p in ("inventory", "payment", "shipping"))
    return SagaDefinition(
        name=NAME,
        start="OrderPlaced",
        key="order_id",
        steps=(
            Step(
                "reserve",
                Command("ReserveInventory", inventory),
                completed_by=("InventoryReserved",),
                failed_by=("InventoryUnavailable",),
                timeout=step_timeout,
                retry=retry,
                compensation=Compensation(
                    Command("ReleaseInventory", inventory),
                    confirmed_by=("InventoryReleased",),
                    failed_by=("InventoryReleaseFailed",),
                    timeout=compensation_timeout,
                    retry=undo,
                ),
            ),
            Step(
                "pay",
                Command("ProcessPayment", payment),
                completed_by=("PaymentProcessed",),
                failed_by=("PaymentFailed",),
                timeout=step_timeout,
                retry=retry,
                compensation=Compensation(
                    Command("RefundPayment", payment),
                    confirmed_by=("PaymentRefunded",),
                    timeout=compensation_timeout,
                    retry=undo,
                ),
            ),
            Step(
                "ship",
                Command("ShipOrder", shipping),
                completed_by=("OrderShipped",),
                failed_by=("ShipmentFailed",),
                timeout=step_timeout,
                retry=retry,
            ),
        ),
        listens_to=(ORDERS, *(replies for _, replies in CATEGORIES.values())),
        unmatched="count",
        on_completed=Command("OrderConfirmed", NAME),
        on_compensated=Command("OrderCancelled", NAME),
        on_parked=Command("CheckoutParked", NAME),
    )


CHECKOUT = checkout_saga()
