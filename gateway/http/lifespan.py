"""The ASGI lifespan protocol, driven for an app served by :mod:`gateway.http.server`.

The proxy runs its start and stop hooks (metrics snapshots, the rollout follower, closing
the backend pool) from ``lifespan.startup`` and ``lifespan.shutdown``, as it does under
any ASGI server; :class:`Lifespan` sends those two events and waits for their answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.http.websocket import App, Message


class LifespanFailed(Exception):
    """The app answered a lifespan event with ``...failed``, or raised."""


class Lifespan:
    """``await startup()`` before serving, ``await shutdown()`` after."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answers: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        try:
            await self.app(scope, self._inbox.get, self._answers.put)
        except Exception as exc:
            await self._answers.put({"type": "lifespan.error", "message": repr(exc)})
            return
        await self._answers.put({"type": "lifespan.ended"})

    async def _event(self, kind: str) -> None:
        await self._inbox.put({"type": f"lifespan.{kind}"})
        answer = await self._answers.get()
        if answer["type"] == f"lifespan.{kind}.complete" or answer["type"] == "lifespan.ended":
            return
        raise LifespanFailed(f"lifespan {kind} failed: {answer.get('message', '')}")

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._event("startup")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._event("shutdown")
        await self._task


__all__ = ["Lifespan", "LifespanFailed"]
