"""The waiting helpers: they return the condition's truthy value, retry exceptions, stop on
``GiveUp``, and fail naming what was awaited and the last value or exception seen."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.eventually import GiveUp, describe, eventually, wait_until


class Countdown:
    """A condition that is falsy ``n`` times, then returns ``value``."""

    def __init__(self, n: int, value: str = "ready") -> None:
        self.n, self.value, self.calls = n, value, 0

    def __call__(self) -> str:
        self.calls += 1
        return self.value if self.calls > self.n else ""

    async def later(self) -> str:
        return self()


async def test_eventually_returns_the_truthy_value_of_a_sync_condition() -> None:
    countdown = Countdown(3)
    assert await eventually(countdown, timeout=5, interval=0.001) == "ready"
    assert countdown.calls == 4


async def test_eventually_awaits_an_async_condition() -> None:
    countdown = Countdown(2, "done")
    value: str = await eventually(countdown.later, timeout=5, interval=0.001)
    assert value == "done"
    assert countdown.calls == 3


async def test_eventually_times_out_naming_the_condition_and_the_last_value() -> None:
    values = iter(range(1000))
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        await eventually(lambda: next(values) < 0, timeout=0.2, interval=0.01)
    assert time.monotonic() - started < 2
    assert str(failure.value) == (
        "timed out after 0.2s waiting for lambda: next(values) < 0; last value: False"
    )


async def test_eventually_uses_the_given_message() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the queue to drain; last value: \[\]"):
        await eventually(lambda: [], timeout=0.05, message="the queue to drain")


async def test_eventually_retries_exceptions_and_reports_the_last_one() -> None:
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionRefusedError(f"attempt {calls}")
        return calls

    assert await eventually(flaky, timeout=5, interval=0.001) == 3

    def broken() -> bool:
        raise KeyError("orders")

    with pytest.raises(AssertionError) as failure:
        await eventually(broken, timeout=0.05, interval=0.01)
    assert "waiting for " in str(failure.value)
    assert "broken; last error: KeyError: 'orders'" in str(failure.value)
    assert isinstance(failure.value.__cause__, KeyError)


async def test_a_failed_assertion_inside_the_condition_is_retried() -> None:
    seen: list[int] = []

    def check() -> bool:
        seen.append(1)
        assert len(seen) >= 3, f"only {len(seen)}"
        return True

    assert await eventually(check, timeout=5, interval=0.001)
    seen.clear()

    def never() -> bool:
        seen.append(1)
        assert not seen, f"{len(seen)} items left"
        return True

    with pytest.raises(AssertionError, match=r"never; last error: AssertionError: \d+ items left"):
        await eventually(never, timeout=0.05)


async def test_give_up_stops_the_wait_at_once() -> None:
    def dead() -> bool:
        raise GiveUp("the process exited with 1")

    started = time.monotonic()
    with pytest.raises(GiveUp, match="the process exited with 1"):
        await eventually(dead, timeout=30)
    assert time.monotonic() - started < 1


async def test_a_hanging_async_attempt_is_bounded_by_the_timeout() -> None:
    async def hangs() -> bool:
        await asyncio.sleep(3600)
        return True

    with pytest.raises(AssertionError, match="last error: TimeoutError"):
        await eventually(hangs, timeout=0.1)


async def test_a_zero_timeout_still_makes_one_attempt() -> None:
    assert await eventually(Countdown(0).later, timeout=0) == "ready"
    assert wait_until(Countdown(0), timeout=0) == "ready"
    with pytest.raises(AssertionError, match="0s waiting for .*; last value: ''"):
        await eventually(Countdown(1), timeout=0)


class Falsy:
    """A falsy value with a long repr (a report of 1000 rows, say)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "row, " * 1000


async def test_a_long_last_value_is_shortened() -> None:
    with pytest.raises(AssertionError) as failure:
        await eventually(Falsy, timeout=0)
    assert "last value: row, row, " in str(failure.value)
    assert str(failure.value).endswith("...") and len(str(failure.value)) < 600


def test_wait_until_returns_the_truthy_value() -> None:
    countdown = Countdown(3, "up")
    assert wait_until(countdown, timeout=5, interval=0.001) == "up"
    assert countdown.calls == 4


def test_wait_until_times_out_with_the_last_error() -> None:
    def refused() -> bool:
        raise OSError("connection refused")

    with pytest.raises(AssertionError) as failure:
        wait_until(refused, timeout=0.05, interval=0.01, message="port 5432 to listen")
    assert str(failure.value) == (
        "timed out after 0.05s waiting for port 5432 to listen; "
        "last error: OSError: connection refused"
    )


def test_wait_until_stops_on_give_up() -> None:
    def dead() -> bool:
        raise GiveUp("gone")

    with pytest.raises(GiveUp, match="gone"):
        wait_until(dead, timeout=30)


def test_describe_names_functions_and_shows_lambda_source() -> None:
    assert describe(Countdown(1).later).endswith("Countdown.later")
    limit = 3
    assert describe(lambda: limit > 2) == "lambda: limit > 2"
    assert describe(lambda: {"a": (1, 2)}.get("a")) == 'lambda: {"a": (1, 2)}.get("a")'
