"""WebSocket upgrades relayed through the gateway to the chosen backend."""

from __future__ import annotations

from websockets.asyncio.client import connect

from tests.gateway.support import backends, config_text, gateway
from tests.gateway.test_proxy import split_routes


async def test_websocket_echo_through_the_gateway() -> None:
    with backends("legacy", "new") as b:
        text = config_text({n: s.url for n, s in b.items()}, split_routes(100, 0))
        with gateway(text) as (gw, _):
            async with connect(f"ws://127.0.0.1:{gw.port}/api/users/ws") as ws:
                await ws.send("hello")
                assert await ws.recv() == "new:hello"
                await ws.send(b"\x00\x01")
                assert await ws.recv() == b"\x00\x01"


async def test_websocket_to_a_dead_backend_is_closed() -> None:
    import pytest
    from websockets.exceptions import InvalidStatus

    from tests.harness import free_port

    text = config_text(
        {"legacy": f"http://127.0.0.1:{free_port()}"}, "  - {name: all, split: {legacy: 1}}"
    )
    with gateway(text) as (gw, _):
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{gw.port}/ws"):
                pass
