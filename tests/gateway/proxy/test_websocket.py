"""WebSocket upgrades relayed through the gateway to the chosen backend."""

from __future__ import annotations

import json

import httpx
from websockets.asyncio.client import connect

from tests.gateway.proxy.test_proxy import split_routes
from tests.gateway.support import backends, config_text, gateway


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


CLAIMS = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Real-IP": "6.6.6.6",
    "Forwarded": "for=6.6.6.6",
    "True-Client-IP": "6.6.6.6",
}


async def test_an_upgrade_gets_the_same_forwarding_rules_as_plain_http() -> None:
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            async with connect(f"ws://127.0.0.1:{gw.port}/ws", additional_headers=CLAIMS) as ws:
                await ws.send("?headers")
                seen = dict(json.loads(await ws.recv()))
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"127.0.0.1:{gw.port}"
    for name in ("x-real-ip", "forwarded", "true-client-ip"):
        assert name not in seen, name
    assert len(seen["x-request-id"]) == 32


async def test_plain_http_drops_client_claims_of_its_address() -> None:
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                seen = dict((await client.get("/x", headers=CLAIMS)).json()["headers"])
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-forwarded-proto"] == "http"
    for name in ("x-real-ip", "forwarded", "true-client-ip"):
        assert name not in seen, name
