"""The client side of an exchange: what the proxy sees of a request and how it answers.

The proxy is written against this seam, not against ASGI, so that the same code is
served two ways: by :mod:`gateway.http.server` straight from the HTTP parser (the hot
path: no ASGI scope or messages), and through :class:`AsgiResponder` by any ASGI
server (how the proxy is mounted elsewhere, and how WebSocket upgrades arrive).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.http.head import MARKERS
from gateway.types import Headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client went away before the exchange was over."""


@dataclass(slots=True, init=False)
class Request:
    """A client request's head, as the proxy needs it."""

    method: str
    target: bytes  # the request target as sent (origin-form is the only one served)
    path: bytes  # the raw path, still percent-encoded
    query: bytes
    headers: Headers  # names lower-cased
    client: str  # the peer's address
    scheme: str = "http"
    #: a gateway marker header (:data:`gateway.http.head.MARKERS`) is among ``headers``;
    #: the proxy removes them before routing (:mod:`gateway.proxy.markers`)
    marked: bool = False

    def __init__(
        self,
        method: str,
        target: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        client: str,
        scheme: str = "http",
        marked: bool = False,
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.headers = headers
        self.client = client
        self.scheme = scheme
        self.marked = marked


class Responder(Protocol):
    """The connection a request arrived on, seen from the proxy."""

    async def read(self) -> tuple[bytes, bool]:
        """The next piece of the request body and whether more follows; raises
        :class:`ClientGone` when the client disconnected."""
        ...

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        """Send a whole response at once."""
        ...

    async def start(self, status: int, headers: Headers) -> None:
        """Send the head of a response whose body follows with :meth:`write`."""
        ...

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None:
        """The streamed body is complete."""
        ...


def request_from_scope(scope: Scope) -> Request:
    """A :class:`Request` for an ASGI HTTP scope.  An ASGI server has already parsed the
    target down to a path, so the absolute-form and head-size refusals are the native
    path's alone (:mod:`gateway.http.server`)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    client = scope.get("client")
    headers: Headers = scope["headers"]
    return Request(
        method=scope["method"],
        target=raw_path + b"?" + query if query else raw_path,
        path=raw_path,
        query=query,
        headers=headers,
        client=client[0] if client else "0.0.0.0",
        scheme=scope.get("scheme", "http"),
        marked=any(name in MARKERS for name, _ in headers),
    )


class AsgiResponder:
    """:class:`Responder` over ASGI ``receive`` and ``send``."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def read(self) -> tuple[bytes, bool]:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        return message.get("body", b""), message.get("more_body", False)

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def start(self, status: int, headers: Headers) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, chunk: bytes) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b""})
