"""One request on a gateway connection, answered below ASGI: :class:`NativeCycle`.

:class:`~gateway.http.server.GatewayProtocol` makes one per plain HTTP request and runs
the handler (the proxy) with it as the :class:`~gateway.http.downstream.Responder`; it
writes HTTP/1.1 straight to the transport (one ``write`` for a whole response).  It is
a uvicorn ``RequestResponseCycle`` in all but its ASGI side, so that uvicorn's
connection logic (pipelining, flow control, disconnects) drives it unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from gateway.http.downstream import ClientGone, Request, Responder
from gateway.http.head import CLOSES
from gateway.http.upstream import UpstreamError
from gateway.types import Headers


class Connection(Protocol):
    """What a cycle needs from the connection's protocol (gateway.http.server)."""

    transport: asyncio.Transport
    flow: FlowControl
    expect_100_continue: bool

    def on_response_complete(self) -> None: ...

    def end_connection(self) -> None: ...


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
    """One request on a connection, answered as a :class:`~gateway.http.downstream.Responder`.

    It keeps the attributes uvicorn's protocol reads on its cycle (``body``,
    ``more_body``, ``message_event``, ``disconnected``, ``response_complete``,
    ``keep_alive``), so the connection logic around it is uvicorn's own.
    """

    def __init__(self, protocol: Connection, request: Request, keep_alive: bool) -> None:
        # uvicorn's __init__ wants an ASGI scope and more; only its state is kept here.
        self.request = request
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.message_event = cast(asyncio.Event, _Signal())
        self.on_response = protocol.on_response_complete
        self.end_connection = protocol.end_connection
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
        if status in CLOSES:
            self.keep_alive = False
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
            self.end_connection()
        self.on_response()


def _nothing() -> None:
    return None
