"""A participant down for 20 s, on the real broker and PostgreSQL: with a short step
timeout the payment step times out and the checkout compensates (and the payment the
service makes when it comes back is refunded: a late success is compensated too); with
a longer timeout the checkout waits and completes after the participant returns."""

from __future__ import annotations

import asyncio
import time

import pytest

from examples.checkout.saga import checkout_saga
from strangler_events.saga import Retry
from tests.eventually import eventually
from tests.examples.checkout_env import CheckoutEnv, steps

pytestmark = pytest.mark.postgres

DOWN = 20.0  # seconds the payment service is down


async def test_payment_down_past_its_timeout_compensates_and_refunds_the_late_payment(
    pg_database: str, kafka_bootstrap: str
) -> None:
    saga = checkout_saga(step_timeout=3.0, compensation_retry=Retry(attempts=5, backoff=0.1))
    async with CheckoutEnv(pg_database, kafka_bootstrap, definition=saga, stock={"book": 3}) as env:
        await env.start_all()
        await env.stop_participant("payment")
        down_since = time.monotonic()
        (order,) = await env.place(1)
        found = await env.until_state(order, "compensated", timeout=DOWN)
        assert time.monotonic() - down_since < DOWN  # it did not wait for the service
        assert steps(found, "timeout", "compensate", "confirmed") == [
            ("timeout", ""),
            ("compensate", "ReleaseInventory"),
            ("confirmed", "InventoryReleased"),
        ]
        assert await env.available() == {"book": 3}
        await _sleep_until(down_since + DOWN)
        assert (await env.instances([order]))[order].state == "compensated"
        await env.start_participant("payment")

        async def refunded() -> bool:  # the queued ProcessPayment: a late success
            inst = (await env.instances([order]))[order]
            return inst.state == "compensated" and bool(steps(inst, "late-reply"))

        await eventually(refunded, timeout=30, interval=0.2)
        found = (await env.instances([order]))[order]
        assert steps(found, "late-reply", "compensate", "confirmed")[-3:] == [
            ("late-reply", "PaymentProcessed"),
            ("compensate", "RefundPayment"),
            ("confirmed", "PaymentRefunded"),
        ]
        handled = await env.handled()
        assert handled[(order, "ProcessPayment")] == 1
        assert handled[(order, "RefundPayment")] == 1
        assert await env.available() == {"book": 3}


async def test_payment_down_within_a_longer_timeout_completes_after_it_returns(
    pg_database: str, kafka_bootstrap: str
) -> None:
    saga = checkout_saga(step_timeout=60.0)
    async with CheckoutEnv(pg_database, kafka_bootstrap, definition=saga, stock={"book": 3}) as env:
        await env.start_all()
        await env.stop_participant("payment")
        down_since = time.monotonic()
        (order,) = await env.place(1)
        await env.until_state(order, "running")
        await _sleep_until(down_since + DOWN)
        assert (await env.instances([order]))[order].state == "running"
        await env.start_participant("payment")
        found = await env.until_state(order, "completed", timeout=30)
        assert ("timeout", "") not in steps(found, "timeout")
        assert await env.available() == {"book": 2}


async def _sleep_until(moment: float) -> None:
    """The outage lasts its full length (the scenario is "down for 20 s", not a wait for
    a condition)."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))
