"""The checkout saga end to end on the real broker and real PostgreSQL: the outbox
relay, the saga runner and the three participants.  Happy path; a declined payment
releases the inventory (compensation in reverse, confirmed) and cancels the order."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.examples.checkout_env import CheckoutEnv, steps

pytestmark = pytest.mark.postgres


async def test_a_checkout_reserves_pays_ships_and_a_declined_one_is_compensated(
    pg_database: str, kafka_bootstrap: str
) -> None:
    async with CheckoutEnv(pg_database, kafka_bootstrap, stock={"book": 10}) as env:
        await env.start_all()
        ok, declined = await env.place(2, declined=[1])
        found = await env.until_terminal([ok, declined], timeout=60)

        assert found[ok].state == "completed"
        assert steps(found[ok], "command", "reply") == [
            ("command", "ReserveInventory"),
            ("reply", "InventoryReserved"),
            ("command", "ProcessPayment"),
            ("reply", "PaymentProcessed"),
            ("command", "ShipOrder"),
            ("reply", "OrderShipped"),
        ]
        assert found[declined].state == "compensated"
        assert steps(found[declined], "command", "reply", "compensate", "confirmed") == [
            ("command", "ReserveInventory"),
            ("reply", "InventoryReserved"),
            ("command", "ProcessPayment"),
            ("reply", "PaymentFailed"),
            ("compensate", "ReleaseInventory"),
            ("confirmed", "InventoryReleased"),
        ]
        assert found[declined].reason == "pay failed: PaymentFailed"
        assert await env.available() == {"book": 9}  # the declined one's unit is back
        handled = await env.handled()
        assert handled == {
            (ok, "ReserveInventory"): 1,
            (ok, "ProcessPayment"): 1,
            (ok, "ShipOrder"): 1,
            (declined, "ReserveInventory"): 1,
            (declined, "ProcessPayment"): 1,
            (declined, "ReleaseInventory"): 1,
        }


async def test_a_release_that_fails_three_times_then_succeeds_ends_compensated(
    pg_database: str, kafka_bootstrap: str
) -> None:
    async with CheckoutEnv(
        pg_database, kafka_bootstrap, release_failures=3, stock={"book": 5}
    ) as env:
        await env.start_all()
        (order,) = await env.place(1, declined=[0])
        found = (await env.until_terminal([order], timeout=60))[order]
        assert found.state == "compensated"
        kinds = steps(found, "compensate", "reply", "backoff", "confirmed")[2:]
        assert kinds == [
            ("compensate", "ReleaseInventory"),
            ("reply", "InventoryReleaseFailed"),
            ("backoff", ""),
            ("compensate", "ReleaseInventory"),
            ("reply", "InventoryReleaseFailed"),
            ("backoff", ""),
            ("compensate", "ReleaseInventory"),
            ("reply", "InventoryReleaseFailed"),
            ("backoff", ""),
            ("compensate", "ReleaseInventory"),
            ("confirmed", "InventoryReleased"),
        ]
        assert await env.available() == {"book": 5}
        assert (await env.handled())[(order, "ReleaseInventory")] == 4


async def test_a_release_that_always_fails_parks_the_checkout_and_lists_it(
    pg_database: str, kafka_bootstrap: str
) -> None:
    async with CheckoutEnv(pg_database, kafka_bootstrap, release_failures=-1) as env:
        await env.start_all()
        ok, parked = await env.place(2, declined=[1])
        found = await env.until_terminal([ok, parked], timeout=60)
        assert found[parked].state == "parked"
        assert found[parked].reason == "compensation of reserve failed after 5 attempt(s)"
        assert found[ok].state == "completed"
        assert (await env.handled())[(parked, "ReleaseInventory")] == 5

    def saga(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "saga", *args, "--store", pg_database],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = saga("list", "--state", "parked")
    assert parked in out and ok not in out and "parked" in out
    listed = json.loads(saga("list", "--format", "json"))
    assert {(i["id"], i["state"]) for i in listed} == {(ok, "completed"), (parked, "parked")}
    shown = saga("show", parked)
    assert "compensation of reserve failed after 5 attempt(s)" in shown
    assert shown.count("InventoryReleaseFailed") == 5


async def test_a_thousand_concurrent_checkouts_a_tenth_declined(
    pg_database: str, kafka_bootstrap: str
) -> None:
    total, initial = 1000, 5000
    declined = set(range(0, total, 10))
    async with CheckoutEnv(pg_database, kafka_bootstrap, stock={"book": initial}) as env:
        await env.start_all()
        ids = await env.place(total, declined=declined)
        found = await env.until_terminal(ids, timeout=240)
        states = [found[ident].state for ident in ids]
        assert states == ["compensated" if n in declined else "completed" for n in range(total)]
        assert await env.available() == {"book": initial - (total - len(declined))}
        handled = await env.handled()
        assert set(handled.values()) == {1}  # no command reached its handler twice
        assert sum(handled.values()) == 3 * (total - len(declined)) + 3 * len(declined)
