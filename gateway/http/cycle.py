"""One request on a gateway connection, answered below ASGI: :class:`NativeCycle`.

:class:`~gateway.http.connection.Connection` makes one per plain HTTP request and runs the
handler (the proxy) with it as the :class:`~gateway.http.downstream.Responder`.  It writes
HTTP/1.1 straight to the transport (one ``write`` for a whole response), framed by
:mod:`gateway.http.response`, and takes the request body from the connection as it is
framed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.http import response
from gateway.http.batch import WriteBatch
from gateway.http.downstream import ClientGone, Request, Responder
from gateway.http.framing import Head
from gateway.http.upstream import UpstreamError
from gateway.types import Headers

log = logging.getLogger("strangler.protocol")
Handler = Callable[[Request, Responder], Awaitable[None]]


class Connection(Protocol):
    """What a cycle needs from its connection (:mod:`gateway.http.connection`)."""

    transport: asyncio.Transport
    batch: WriteBatch  # writes held to the loop's next turn: flushed before any other

    def body_wanted(self) -> None:
        """The handler waits for more of the body: read from the client."""

    async def writable(self) -> None:
        """Return once the client's socket buffer has room."""

    @property
    def write_paused(self) -> bool: ...

    @property
    def draining(self) -> bool:
        """The server is stopping: responses end their connection."""
        ...

    def response_complete(self, cycle: NativeCycle) -> None: ...


class NativeCycle:
    """One request on a connection, answered as a :class:`~gateway.http.downstream.Responder`."""

    __slots__ = (
        "_chunked",
        "_conn",
        "_framing",
        "_waiter",
        "body",
        "disconnected",
        "expect_continue",
        "head_only",
        "http10",
        "keep_alive",
        "more_body",
        "request",
        "response_complete",
        "response_started",
        "waiting_since",
    )

    def __init__(self, conn: Connection, head: Head) -> None:
        self._conn = conn
        self.request = head.request
        self.keep_alive = head.keep_alive
        self.expect_continue = head.expect_continue
        self.http10 = head.http10
        self.head_only = head.request.method == "HEAD"
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._framing = response.LENGTH
        self._waiter: asyncio.Future[None] | None = None
        self.waiting_since = 0.0  # loop time the handler began waiting for body; 0 if not

    def wake(self) -> None:
        """Body arrived, the body ended, or the client left: a waiting read goes on."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, handler: Handler) -> None:
        """Answer with ``handler`` (in the connection's task: :meth:`Server.run
        <gateway.http.server.Server.run>`)."""
        try:
            await handler(self.request, self)
        except BaseException as exc:
            self._failed(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not self.response_complete and not self.disconnected:
                log.error(
                    "response to %s %r left incomplete", self.request.method, self.request.target
                )
                self._conn.batch.flush()
                self._conn.transport.close()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, UpstreamError):
            # The backend failed after the response had started: all the client can be
            # told is that the connection ends early.
            log.warning(
                "%s %r: backend failed mid-response: %s",
                self.request.method,
                self.request.target,
                exc,
            )
        elif not isinstance(exc, asyncio.CancelledError | ClientGone):
            log.error("error serving %s %r", self.request.method, self.request.target, exc_info=exc)
        if self.disconnected:
            # The connection ended the exchange (the client left, or the request was
            # refused mid-body and the connection lingers so that its answer arrives):
            # closing here would cut the linger short and reset the connection.
            return
        self._conn.batch.flush()
        transport = self._conn.transport
        if not self.response_started:
            self.response_started = True
            transport.write(response.ERROR_500)
        transport.close()

    # Responder ---------------------------------------------------------------
    async def read(self) -> tuple[bytes, bool]:
        conn = self._conn
        if self.expect_continue:
            self.expect_continue = False
            if self.more_body and not conn.transport.is_closing():  # a body is expected
                conn.batch.flush()
                conn.transport.write(response.CONTINUE)
        if not self.body and self.more_body and not self.disconnected:
            conn.body_wanted()
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            self.waiting_since = loop.time()  # the server's sweep enforces a deadline
            try:
                await waiter
            finally:
                self._waiter = None
                self.waiting_since = 0.0
        if self.disconnected or self.response_complete:
            raise ClientGone
        chunk = bytes(self.body)
        self.body.clear()
        if self.more_body:
            conn.body_wanted()
        return chunk, self.more_body

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        conn = self._conn
        if conn.write_paused and not self.disconnected:
            await conn.writable()  # the client's socket buffer is full
        if self.disconnected:
            return
        self._started()
        keep_alive = self.keep_alive and not conn.draining
        data, self.keep_alive = response.whole(
            status, headers, body, keep_alive, self.head_only, self.http10
        )
        if self.keep_alive:  # the connection stays open: written with the turn's others
            conn.batch.write(conn.transport, data)
        else:  # closed once it is written
            conn.batch.flush()
            conn.transport.write(data)
        self._complete()

    async def start(self, status: int, headers: Headers) -> None:
        conn = self._conn
        if conn.write_paused and not self.disconnected:
            await conn.writable()
        if self.disconnected:
            return
        self._started()
        keep_alive = self.keep_alive and not conn.draining
        head = response.head(status, headers, keep_alive, self.head_only, self.http10)
        response.connection_header(head, self.http10)
        self.keep_alive = head.keep_alive
        self._framing = head.framing
        conn.batch.flush()
        conn.transport.write(head.streamed())

    async def write(self, chunk: bytes) -> None:
        conn = self._conn
        if conn.write_paused and not self.disconnected:
            await conn.writable()
        if self.disconnected:
            raise ClientGone
        if self.head_only or not chunk:
            return
        conn.transport.write(response.piece(chunk, self._framing))

    async def end(self) -> None:
        if self.disconnected:
            return
        if self._framing == response.CHUNKED and not self.head_only:
            self._conn.transport.write(response.LAST_CHUNK)
        self._complete()

    # ------------------------------------------------------------------------
    def _started(self) -> None:
        self.response_started = True
        self.expect_continue = False  # answered without reading the body: no 100

    def _complete(self) -> None:
        self.response_complete = True
        self.wake()
        self._conn.response_complete(self)


__all__ = ["Connection", "Handler", "NativeCycle"]
