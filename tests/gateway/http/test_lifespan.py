"""The ASGI lifespan driven around the server: startup and shutdown answered, failures
raised, apps without lifespan tolerated."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.http.lifespan import Lifespan, LifespanFailed


async def test_startup_and_shutdown_reach_the_app() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            seen.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    lifespan = Lifespan(app)
    await lifespan.startup()
    assert seen == ["lifespan.startup"]
    await lifespan.shutdown()
    assert seen == ["lifespan.startup", "lifespan.shutdown"]


async def test_a_failed_startup_raises_and_an_app_without_lifespan_is_served() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(LifespanFailed, match="no database"):
        await Lifespan(failing).startup()

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise ValueError("only http")

    with pytest.raises(LifespanFailed, match="only http"):
        await Lifespan(plain).startup()

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    lifespan = Lifespan(silent)
    await lifespan.startup()
    await lifespan.shutdown()
