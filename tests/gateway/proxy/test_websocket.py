"""WebSocket upgrades relayed through the gateway to the chosen backend."""

from __future__ import annotations

import asyncio
import json

import httpx
from websockets.asyncio.client import connect

from tests.gateway.proxy.test_proxy import split_routes
from tests.gateway.support import backends, config_text, gateway
from tests.harness import free_port


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


def _new_and_legacy(new_url: str, legacy_url: str) -> str:
    """``new`` (ejected after one failure) takes every upgrade, ``legacy`` its fallback."""
    return (
        "version: 1\nbackends:\n"
        f'  legacy: {{url: "{legacy_url}", legacy: true}}\n'
        f'  new: {{url: "{new_url}", outlier: {{consecutive_failures: 1}}}}\n'
        "routes:\n  - {name: all, split: {new: 1}, fallback: legacy}\n"
    )


async def test_an_upgrade_the_chosen_backend_cannot_take_goes_to_the_fallback() -> None:
    with backends("legacy") as b:
        unreachable = f"http://127.0.0.1:{free_port()}"
        with gateway(_new_and_legacy(unreachable, b["legacy"].url)) as (gw, proxy):
            async with connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
                await ws.send("hello")
                assert await ws.recv() == "legacy:hello"
            assert proxy.outliers.ejected() == frozenset({"new"})
            assert proxy.metrics.ejections.get(("new",)) == 1


async def test_a_backend_answering_upgrades_503_is_ejected_and_then_not_tried() -> None:
    asked: list[bytes] = []

    async def unavailable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(unavailable, "127.0.0.1", 0)
    new = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        with backends("legacy") as b, gateway(_new_and_legacy(new, b["legacy"].url)) as (gw, _):
            for word in ("hello", "again"):
                async with connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
                    await ws.send(word)
                    assert await ws.recv() == f"legacy:{word}"
    finally:
        server.close()
    assert len(asked) == 1  # the second upgrade was routed past the ejected backend
