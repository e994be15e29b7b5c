"""Background work one step per event-loop turn, so that it never comes in a burst.

Mirrored requests to a shadow backend that answers in constant time come back together: the
samples a lane started in one turn (the first ones, or the ones after an idle spell) are
answered in one turn, start their next samples in one turn, and stay in step from then on.
Each answer is then compared on the primary traffic's event loop, so a group of them is one
stall of all of their work, which every request the loop serves at that moment waits out.
Under the shadow benchmark's load, how late a 1 ms timer fired on a worker's loop had a p99
of 0.85-0.99 ms near such a group and 0.62-0.64 ms away from them; paced, 0.76-0.78 ms near
and 0.60-0.62 ms away.

:class:`Pace` lets the tasks that wait on :meth:`Pace.turn` through one per loop turn, in
the order they asked, so the requests served between them wait for one sample's work at
most.  A turn with no waiter costs nothing: the pace schedules itself only while tasks
wait.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Pace:
    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    async def turn(self) -> None:
        """Return in a loop turn of its own: after every task that asked before it, and
        after one turn of the event loop's other work since the last of those."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._release)
        await waiter

    def _release(self) -> None:
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():  # a cancelled waiter gives its turn to the next
                waiter.set_result(None)
                break
        if waiting:
            asyncio.get_running_loop().call_soon(self._release)
        else:
            self._scheduled = False
