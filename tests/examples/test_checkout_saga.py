"""The checkout saga's behaviour, given-when-then, with the toolkit's kit (no broker,
no database): the happy path, a declined payment compensated in reverse, timeouts,
late replies and a compensation that keeps failing."""

from __future__ import annotations

import pytest

from examples.checkout.saga import CHECKOUT, checkout_saga
from strangler_events.envelope import Event
from strangler_events.saga import Retry
from strangler_events.testing import SagaFixture

ORDER = {"order_id": "o-1", "sku": "book", "quantity": 2, "amount": 30.0, "card": "4242"}


def ev(kind: str, n: int = 0, **payload: object) -> Event:
    return Event(f"{kind}-{n}", kind, "x", "o-1", {"order_id": "o-1", **payload})


placed = Event("OrderPlaced-0", "OrderPlaced", "orders", "o-1", dict(ORDER))
reserved, paid, shipped = (
    ev("InventoryReserved"),
    ev("PaymentProcessed", payment_id="p"),
    ev("OrderShipped"),
)
declined = ev("PaymentFailed", reason="card declined")
released = ev("InventoryReleased")

checkout = SagaFixture(CHECKOUT)


def test_an_order_placed_reserves_its_inventory() -> None:
    checkout.given().when(placed).then_commands(
        {
            "type": "ReserveInventory",
            "topic": "inventory.commands",
            "key": "o-1",
            "payload": {"order_id": "o-1", "sku": "book", "quantity": 2},
        }
    ).then_state("running")


def test_the_happy_path_reserves_pays_ships_and_confirms() -> None:
    checkout.given(placed).when(reserved).then_commands(
        {"type": "ProcessPayment", "topic": "payment.commands", "payload": {"amount": 30.0}}
    )
    checkout.given(placed, reserved).when(paid).then_commands(
        {"type": "ShipOrder", "payload": {"payment_id": "p"}}
    )
    checkout.given(placed, reserved, paid).when(shipped).then_commands(
        {"type": "OrderConfirmed", "topic": "checkout"}
    ).then_state("completed")


def test_a_declined_payment_releases_the_inventory_then_cancels_the_order() -> None:
    checkout.given(placed, reserved).when(declined).then_commands(
        {"type": "ReleaseInventory", "topic": "inventory.commands"}
    ).then_state("compensating")
    checkout.given(placed, reserved, declined).when(released).then_commands(
        {"type": "OrderCancelled", "payload": {"reason": "card declined"}}
    ).then_state("compensated")


def test_a_failed_shipment_compensates_payment_then_inventory_one_at_a_time() -> None:
    failed = ev("ShipmentFailed")
    given = checkout.given(placed, reserved, paid)
    given.when(failed).then_commands("RefundPayment")
    after_refund = checkout.given(placed, reserved, paid, failed, ev("PaymentRefunded"))
    assert after_refund.instance is not None
    assert [e["type"] for e in after_refund.instance.timeline if e["kind"] == "compensate"] == [
        "RefundPayment",
        "ReleaseInventory",
    ]


def test_an_unavailable_item_cancels_without_compensating_anything() -> None:
    checkout.given(placed).when(ev("InventoryUnavailable")).then_commands(
        "OrderCancelled"
    ).then_state("compensated")


def test_a_step_timeout_resends_per_its_retry_then_compensates() -> None:
    saga = SagaFixture(checkout_saga(step_timeout=5.0, step_retry=Retry(attempts=2)))
    saga.given(placed).when_time_passes(4.9).then_no_commands()
    saga.given(placed).when_time_passes(5.0).then_commands(
        {"type": "ReserveInventory", "headers": {"attempt": 2}}
    )
    given = saga.given(placed, reserved)
    given.when_time_passes(5).then_commands({"type": "ProcessPayment", "headers": {"attempt": 2}})


def test_a_payment_timeout_releases_inventory_and_a_late_payment_is_refunded() -> None:
    saga = SagaFixture(checkout_saga(step_timeout=5.0))
    saga.given(placed, reserved).when_time_passes(5).then_commands("ReleaseInventory")
    # the late success arrives after the saga ended compensated: refund it too
    timed_out = saga.given(placed, reserved)
    assert timed_out.instance is not None
    from strangler_events.saga import machine

    after = machine.on_time(saga.definition, timed_out.instance, timed_out.now + 5).instance
    assert after is not None
    after = machine.on_reply(saga.definition, after, released, timed_out.now + 6).instance
    assert after is not None and after.state == "compensated"
    late = machine.on_reply(saga.definition, after, paid, timed_out.now + 7)
    assert [m.type for m in late.messages] == ["RefundPayment"]
    assert late.instance is not None and late.instance.state == "compensating"
    done = machine.on_reply(
        saga.definition, late.instance, ev("PaymentRefunded"), timed_out.now + 8
    )
    assert done.instance is not None and done.instance.state == "compensated"
    assert [m.type for m in done.messages] == ["OrderCancelled"]


def test_a_failing_release_is_retried_with_backoff_then_parked() -> None:
    saga = SagaFixture(checkout_saga(compensation_retry=Retry(attempts=2, backoff=3.0, factor=2.0)))
    failed = ev("InventoryReleaseFailed", 1)
    waiting = saga.given(placed, reserved, declined)
    waiting.when(failed).then_no_commands().then_state("compensating")
    saga.given(placed, reserved, declined, failed).when_time_passes(2.9).then_no_commands()
    saga.given(placed, reserved, declined, failed).when_time_passes(3).then_commands(
        {"type": "ReleaseInventory", "headers": {"attempt": 2}}
    )


def test_a_release_that_always_fails_parks_the_checkout() -> None:
    saga = SagaFixture(checkout_saga(compensation_retry=Retry(attempts=1)))
    saga.given(placed, reserved, declined).when(ev("InventoryReleaseFailed")).then_commands(
        "CheckoutParked"
    ).then_state("parked")


def test_duplicates_and_unknown_replies_are_ignored_with_a_reason() -> None:
    checkout.given(placed, reserved).when(reserved).then_ignored("not awaited").then_no_commands()
    checkout.given(placed).when(ev("Nonsense")).then_ignored("no reply")


def test_the_kit_fails_with_a_table_when_the_commands_differ() -> None:
    with pytest.raises(AssertionError, match="ProcessPayment"):
        checkout.given(placed).when(reserved).then_commands("ShipOrder")
    with pytest.raises(AssertionError, match="not in the expected state"):
        checkout.given(placed).when(reserved).then_state("completed")
