"""The proxy's HTTP/1.1 server: uvicorn's httptools protocol, with the request served
below ASGI.

uvicorn keeps what it does well: accepting connections, keep-alive and its timer,
pipelining, flow control, graceful shutdown, lifespan, and the WebSocket handshake
(upgrades still reach the proxy as ASGI); keep-alive and head deadlines are checked
by one sweep a second instead of a timer per request.  A plain HTTP request, though, skips the
ASGI layer: its head becomes a :class:`~gateway.downstream.Request` straight from
the parser, and :class:`NativeCycle` answers it by writing HTTP/1.1 to the transport
(one ``write`` for a whole response).  Measured on the benchmark, this takes about a
third off the proxy's CPU per request.

Two things the ASGI scope does not carry are handled here as well:

* the request target as sent, so that an absolute-form request for a foreign host
  (which uvicorn would parse down to its path) is refused;
* the size of the request head: httptools has no limit of its own, so the headers
  are counted as they arrive, stored only up to the limit, and the proxy answers
  431 past it.  A head must also arrive whole within ``head_timeout``.

This is the only module that touches uvicorn internals.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gateway.downstream import ClientGone, Headers, Request, Responder
from gateway.upstream import UpstreamError

log = logging.getLogger("strangler.protocol")
Handler = Callable[[Request, Responder], Awaitable[None]]

_NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ERROR_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
    b'content-length: 35\r\nconnection: close\r\n\r\n{"error": "internal gateway error"}'
)


class _Signal:
    """A one-waiter event (uvicorn's cycle API), cheaper than ``asyncio.Event``."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class NativeCycle(RequestResponseCycle):
    """One request on a connection, answered as a :class:`~gateway.downstream.Responder`.

    It keeps the attributes uvicorn's protocol reads on its cycle (``body``,
    ``more_body``, ``message_event``, ``disconnected``, ``response_complete``,
    ``keep_alive``), so the connection logic around it is uvicorn's own.
    """

    def __init__(self, protocol: GatewayProtocol, request: Request, keep_alive: bool) -> None:
        # uvicorn's __init__ wants an ASGI scope and more; only its state is kept here.
        self.request = request
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.message_event = cast(asyncio.Event, _Signal())
        self.on_response = protocol.on_response_complete
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = protocol.expect_100_continue
        self.body = bytearray()
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.head_only = request.method == "HEAD"
        self.chunked_encoding = False

    async def run(self, handler: Handler) -> None:
        try:
            await handler(self.request, self)
        except BaseException as exc:
            if isinstance(exc, UpstreamError):
                # The backend failed after the response had started: all the client can
                # be told is that the connection ends early.
                log.warning(
                    "%s %r: backend failed mid-response: %s",
                    self.request.method,
                    self.request.target,
                    exc,
                )
            elif not isinstance(exc, asyncio.CancelledError | ClientGone):
                log.error(
                    "error serving %s %r", self.request.method, self.request.target, exc_info=exc
                )
            if not self.response_started and not self.disconnected:
                self.response_started = True
                self.transport.write(_ERROR_500)
            self.transport.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not self.response_complete and not self.disconnected:
                log.error(
                    "response to %s %r left incomplete", self.request.method, self.request.target
                )
                self.transport.close()
        finally:
            self.on_response = _nothing

    # Responder ---------------------------------------------------------
    async def read(self) -> tuple[bytes, bool]:
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(_CONTINUE)
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            raise ClientGone
        chunk = bytes(self.body)
        self.body = bytearray()
        return chunk, self.more_body

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        if not await self._writable():
            return
        head, unframed = self._head(status, headers)
        if unframed:
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if not self.head_only:
            head.append(body)
        self.transport.write(b"".join(head))
        self._complete()

    async def start(self, status: int, headers: Headers) -> None:
        if not await self._writable():
            return
        head, unframed = self._head(status, headers)
        if unframed:
            self.chunked_encoding = True
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        self.transport.write(b"".join(head))

    async def write(self, chunk: bytes) -> None:
        if not await self._writable():
            raise ClientGone
        if self.head_only or not chunk:
            return
        if self.chunked_encoding:
            self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            self.transport.write(chunk)

    async def end(self) -> None:
        if self.disconnected:
            return
        if self.chunked_encoding and not self.head_only:
            self.transport.write(b"0\r\n\r\n")
        self._complete()

    # -------------------------------------------------------------------
    async def _writable(self) -> bool:
        """Wait while the client's socket buffer is full; False once the client left."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        return not self.disconnected

    def _head(self, status: int, headers: Headers) -> tuple[list[bytes], bool]:
        """The response head so far, and whether its body still needs framing (it has
        one, and no Content-Length says how long)."""
        self.response_started = True
        self.waiting_for_100_continue = False
        line = STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status
        parts = [line]
        framed = self.head_only or status in _NO_BODY_STATUS
        for name, value in headers:
            if name == b"content-length":
                framed = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        return parts, not framed

    def _complete(self) -> None:
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


def _nothing() -> None:
    return None


class GatewayProtocol(HttpToolsProtocol):
    handler: Handler  # set by protocol_class()
    max_header_bytes = 65536
    head_timeout = 60.0  # the whole request head must arrive within this (slow clients)
    _head_started = 0.0  # loop time of a request head's first byte; 0 when none is pending
    _idle_since = 0.0  # loop time the connection last fell idle; 0 while a request is open
    _peer = "0.0.0.0"

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._peer = self.client[0] if self.client else "0.0.0.0"
        self._idle_since = self.loop.time()
        _watch(self)

    def on_response_complete(self) -> None:
        # uvicorn arms a keep-alive timer per response; the sweep below checks idle
        # connections once a second instead, which costs nothing per request.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since = self.loop.time()

    def on_message_begin(self) -> None:
        # No ASGI scope is built here: plain requests never need one (see below).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._head_bytes = 0
        self._overflow = False
        # uvicorn's keep-alive timer restarts on every byte, so a client trickling its
        # head would never be cut off: the head as a whole gets a deadline, checked by one
        # sweep a second rather than a timer per request.
        self._head_started = self.loop.time()
        self._idle_since = 0.0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_bytes += len(url)
        if self._head_bytes > self.max_header_bytes:
            self._overflow = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.max_header_bytes:
            self._overflow = True  # stop storing: the request is answered with 431
            return
        name = name.lower()  # as uvicorn's own on_header does
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_started = 0.0
        parser = self.parser
        method = parser.get_method().decode("ascii")
        if parser.should_upgrade() and self._should_upgrade():
            # A WebSocket handshake: uvicorn's WebSocket protocol takes the connection
            # and runs the proxy as an ASGI app; it needs the method and headers.
            self.scope = cast(Any, {"method": method, "headers": self.headers})
            return
        url = self.url
        path, _, query = (url.partition(b"#")[0] if b"#" in url else url).partition(b"?")
        request = Request(method, url, path, query, self.headers, self._peer, self.scheme or "http")
        request.overflow = self._overflow
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        existing = self.cycle
        self.cycle = cycle = NativeCycle(self, request, keep_alive)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:
            # Pipelined requests wait their turn (uvicorn starts them from its queue).
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if not isinstance(cycle, NativeCycle):
            super()._start_asgi_task(cycle, app)
            return
        task = self.loop.create_task(cycle.run(self.handler))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


_watched: weakref.WeakSet[GatewayProtocol] = weakref.WeakSet()
_sweeping: set[asyncio.AbstractEventLoop] = set()


def _watch(protocol: GatewayProtocol) -> None:
    _watched.add(protocol)
    loop = protocol.loop
    if loop not in _sweeping:
        _sweeping.add(loop)
        loop.call_later(1.0, _sweep, loop)


def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    """Close connections whose request head is overdue, or idle past keep-alive."""
    now = loop.time()
    for protocol in list(_watched):
        if protocol.transport is None or protocol.transport.is_closing():
            _watched.discard(protocol)
        elif (protocol._head_started and now - protocol._head_started > protocol.head_timeout) or (
            protocol._idle_since and now - protocol._idle_since > protocol.timeout_keep_alive
        ):
            protocol.transport.close()
            _watched.discard(protocol)
    if loop.is_closed():
        _sweeping.discard(loop)
    else:
        loop.call_later(1.0, _sweep, loop)


def protocol_class(
    handler: Handler, max_header_bytes: int, head_timeout: float = 60.0
) -> type[GatewayProtocol]:
    """A protocol class serving plain requests with ``handler`` (uvicorn instantiates
    the class; the ASGI app it is given serves WebSocket upgrades and lifespan)."""
    return type(
        "GatewayProtocol",
        (GatewayProtocol,),
        {
            "handler": staticmethod(handler),
            "max_header_bytes": max_header_bytes,
            "head_timeout": head_timeout,
        },
    )
