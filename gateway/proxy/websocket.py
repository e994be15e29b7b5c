"""WebSocket upgrades, relayed both ways to the chosen backend.

The server (:mod:`gateway.http.websocket`) completes the client's handshake once this
module accepts it; this module routes the upgrade like any request (ejected backends
left out), opens the backend connection with the ``websockets`` client (on the route's
fallback when the chosen backend cannot be reached or answers 502-504, each outcome
counted toward outlier ejection), accepts the client with the backend's chosen
subprotocol, and pumps messages until either side closes.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from gateway.http.downstream import Receive, Scope, Send
from gateway.proxy.generation import Generation
from gateway.proxy.headers import HOP_BY_HOP, request_headers
from gateway.proxy.markers import unmarked
from gateway.proxy.paths import PathError, normalise
from gateway.proxy.ports import BackendHealth
from gateway.proxy.retry import FALLBACK_STATUSES
from gateway.proxy.routing import Facts, Refused
from gateway.tasks import spawn

_HANDSHAKE = frozenset(
    {
        b"host",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"content-length",
    }
)


async def relay(
    gen: Generation, scope: Scope, receive: Receive, send: Send, health: BackendHealth
) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    wanted = gen.table.wanted_header_bytes
    incoming = unmarked(scope["headers"], None)  # no marker of the gateway's passes here
    picked = {n.decode("latin-1"): v.decode("latin-1") for n, v in incoming if n in wanted}
    try:
        path = normalise(raw_path)
        facts = Facts("GET", path, picked)
        decision = gen.table.decide(facts, random.random(), raw_path, health.ejected())
    except (PathError, Refused):
        await send({"type": "websocket.close", "code": 1008})
        return
    if decision is None:
        await send({"type": "websocket.close", "code": 1008})
        return
    # The same forwarding rules as plain HTTP: X-Forwarded-* and other client claims only
    # from trusted proxies, the gateway's own X-Forwarded-For, a request id.
    client = scope.get("client")
    client_ip = client[0] if client else "0.0.0.0"
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    outgoing = request_headers(incoming, client_ip, scheme, client_ip in gen.trusted)
    headers = [
        (n.decode("latin-1"), v.decode("latin-1"))
        for n, v in outgoing.headers
        if n not in HOP_BY_HOP and n not in _HANDSHAKE
    ]
    uris = []
    for name in (decision.backend, decision.fallback):
        if name is not None:
            backend = gen.config.backends[name]
            uri = f"ws://{backend.host}:{backend.port}{backend.base_path}{path}"
            if scope.get("query_string"):
                uri += "?" + scope["query_string"].decode("latin-1")
            uris.append((name, uri, backend.connect_timeout))
    upstream = await _open(uris, headers, scope.get("subprotocols") or None, health)
    if upstream is None:
        await send({"type": "websocket.close", "code": 1011})
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        down = spawn(_backend_to_client(upstream, send), name="ws-backend-to-client")
        try:
            await _client_to_backend(upstream, receive)
        finally:
            down.cancel()
            await asyncio.gather(down, return_exceptions=True)


async def _open(
    uris: list[tuple[str, str, float]],
    headers: list[tuple[str, str]],
    subprotocols: list[str] | None,
    health: BackendHealth,
) -> ClientConnection | None:
    """The connection to the first of ``uris`` (backend, URI, connect timeout) that takes
    the upgrade, the next tried only when one cannot be reached or answers 502-504; each
    outcome counted toward outlier ejection."""
    for name, uri, connect_timeout in uris:
        try:
            upstream = await connect(
                uri,
                additional_headers=headers,
                subprotocols=subprotocols,  # type: ignore[arg-type]
                open_timeout=connect_timeout,
                max_size=None,
                compression=None,
            )
        except (OSError, TimeoutError):
            health.counted(name, False)  # unreachable: try the fallback
            continue
        except InvalidStatus as exc:
            if exc.response.status_code not in FALLBACK_STATUSES:
                return None  # the backend's own answer (a 403, a 404): not a failure of it
            health.counted(name, False)
            continue
        except InvalidHandshake:
            return None
        health.counted(name, True)
        return upstream
    return None


async def _client_to_backend(upstream: ClientConnection, receive: Receive) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            data: Any = message.get("text")
            if data is None:
                data = message.get("bytes", b"")
            try:
                await upstream.send(data)
            except ConnectionClosed:
                return
        elif kind == "websocket.disconnect":
            await upstream.close(message.get("code", 1000))
            return


async def _backend_to_client(upstream: ClientConnection, send: Send) -> None:
    try:
        async for data in upstream:
            key = "text" if isinstance(data, str) else "bytes"
            await send({"type": "websocket.send", key: data})
    except ConnectionClosed:
        pass
    code = upstream.close_code or 1000
    await send({"type": "websocket.close", "code": code})
