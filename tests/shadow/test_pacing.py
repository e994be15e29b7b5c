"""The pace: tasks waiting for a turn get one loop turn each, in order."""

from __future__ import annotations

import asyncio

from gateway.tasks import spawn
from shadow.pacing import Pace
from tests.eventually import eventually


class Turns:
    """Counts event-loop turns: a callback that schedules itself again on every turn."""

    def __init__(self) -> None:
        self.now = 0
        self._handle: asyncio.Handle | None = None

    def __enter__(self) -> Turns:
        self._tick()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        self.now += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)


async def test_waiting_tasks_pass_one_per_loop_turn_in_the_order_they_asked() -> None:
    pace = Pace()
    passed: list[tuple[str, int]] = []

    async def step(name: str) -> None:
        await pace.turn()
        passed.append((name, turns.now))

    with Turns() as turns:
        await asyncio.gather(*(step(name) for name in "abcd"))
    assert [name for name, _ in passed] == list("abcd")
    at = [turn for _, turn in passed]
    assert at == sorted(set(at)), at  # each in a later turn than the one before


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    pace = Pace()
    passed: list[str] = []

    async def step(name: str) -> None:
        await pace.turn()
        passed.append(name)

    tasks = {name: spawn(step(name), name=name) for name in "abc"}
    await asyncio.sleep(0)  # all three are waiting
    tasks["a"].cancel()
    tasks["b"].cancel()
    await eventually(lambda: passed == ["c"], timeout=5, message="c passed")
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_the_pace_schedules_nothing_while_no_one_waits_and_serves_again_later() -> None:
    pace = Pace()
    await pace.turn()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)  # the release that let the first waiter through has run
    ready = loop._ready  # type: ignore[attr-defined]  # asyncio's callbacks due next turn
    assert not [h for h in ready if "Pace" in repr(h)], ready
    await asyncio.wait_for(pace.turn(), timeout=5)  # a new waiter is served
