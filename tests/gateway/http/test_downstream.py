"""The client-side seam: a request read from an ASGI scope, and the proxy served as a plain
ASGI app (any ASGI server) through AsgiResponder, over real sockets."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.config import parse
from gateway.http.downstream import request_from_scope
from gateway.runtime.wiring import build_proxy
from tests.gateway.support import backends, config_text
from tests.harness import UvicornThread


def test_request_from_scope() -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "headers": [(b"host", b"h")],
        "client": ("10.0.0.7", 5000),
        "scheme": "https",
    }
    request = request_from_scope(scope)
    assert (request.method, request.path, request.query, request.target) == (
        "GET",
        b"/a%20b",
        b"x=1",
        b"/a%20b?x=1",
    )
    assert (request.client, request.scheme) == ("10.0.0.7", "https")
    del scope["client"], scope["raw_path"]
    request = request_from_scope(scope)
    assert (request.client, request.path) == ("0.0.0.0", b"/a b")


async def test_the_proxy_as_a_plain_asgi_app() -> None:
    with backends("legacy") as b:
        routes = (
            "  - {name: orders, match: {prefix: /orders}, split: {legacy: 1}}\n"
            "  - {name: bytes, match: {prefix: /bytes}, split: {legacy: 1}}"
        )
        config = parse(config_text({"legacy": b["legacy"].url}, routes))
        with UvicornThread(build_proxy(config), lifespan="on") as server:  # uvicorn's own protocol
            async with httpx.AsyncClient(base_url=server.url) as client:
                got = await client.post("/orders?x=1", content=b"abc")
                assert got.status_code == 200 and got.headers["x-strangler-backend"] == "legacy"
                echoed = got.json()
                assert (echoed["path"], echoed["query"], echoed["size"]) == ("/orders", "x=1", 3)
                streamed = await client.get("/bytes/300000")
                assert len(streamed.content) == 300000
                refused = await client.get("/nothing")
                assert refused.status_code == 404
                assert refused.json() == {"error": "no route matches"}
