"""One pooled keep-alive HTTP/1.1 connection to a backend.

:class:`Connection` is the asyncio protocol under :mod:`gateway.http.upstream`: it
parses responses with httptools, bounds their heads, writes streamed request bodies
(chunked, or raw against a declared Content-Length) and never lets bytes the backend
sent unasked pass for a response: bytes on an idle connection, or after the response
is complete, close the connection.  :class:`PooledResponse` reads a response's body as
it arrives and hands the connection back to its pool.
The errors it raises are in :mod:`gateway.http.upstream_errors`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol, cast

import httptools

from gateway.http.upstream_errors import (
    ClosedBeforeSending,
    LengthMismatch,
    ProtocolFailure,
    ResetBeforeResponse,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.types import Headers

_HIGH_WATER: Final = 256 * 1024  # response bytes buffered before we stop reading the backend
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})
_TIMER_SLACK: Final = 0.001  # a timer firing this early (clock granularity) counts as on time


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Bounds on a backend's response head (Envoy: max_response_headers_kb=60,
    max_headers_count=100); past them the response is a :class:`ProtocolFailure`."""

    size: int = 64 * 1024  # bytes of the head, 1xx interim heads included
    lines: int = 100  # header lines


class Owner(Protocol):
    """The pool a connection belongs to."""

    loop: asyncio.AbstractEventLoop

    def release(self, conn: Connection, reusable: bool) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class Connection:
    """One keep-alive connection; carries one exchange at a time.

    It has every :class:`asyncio.Protocol` method without inheriting the class: a
    compiled (native) class keeps its attributes in slots only when its bases are native
    too, and these attributes are read several times per exchange."""

    def __init__(self, pool: Owner, limits: HeadLimits) -> None:
        self.pool = pool
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = True  # part of the pool's total until dropped
        self.idle_since = 0.0
        self.exchanging = False  # a request holds the connection (from send to release)
        self.head_sent = False  # the exchange's request head was written to the transport
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self.deadline = 0.0  # loop time the response head is due by; 0 when none is awaited
        self._timer: asyncio.TimerHandle | None = None
        self.body: collections.deque[bytes] = collections.deque()  # one for every exchange
        self.head_request = True  # (no parser yet: reset makes one)
        self.reset()

    def reset(self) -> None:
        """Ready for the next exchange."""
        # httptools parses one message after another on a kept-alive connection; only a
        # HEAD response (whose Content-Length announces no body) leaves it out of step.
        if self.head_request:
            self.parser = httptools.HttpResponseParser(self)
        self.status = 0  # set once the final (non-1xx) head is complete
        self.headers: Headers = []
        self.framed = False  # the head has a Content-Length or Transfer-Encoding
        self.head_waiter: asyncio.Future[None] | None = None
        if self.body:
            self.body.clear()
        self.buffered = 0
        self.body_waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.error: UpstreamError | None = None
        self.reading_paused = False
        self.head_request = False
        self.until_close = False  # body delimited by the connection closing (RFC 9112 6.3)
        self.head_bytes = 0  # bytes received while no final head was complete
        self.head_size = 0  # bytes of the header lines parsed (1xx heads included)
        self.head_lines = 0

    # asyncio protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # Bytes while the request's head is still held (a 408 and a close, sent as the
        # connection was taken) answer nothing asked: the close then leaves it unsent.
        if not self.exchanging or self.complete or not self.head_sent:
            return self._unasked()
        if self.status == 0:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolFailure("backend switched protocols on a plain request"))
        except httptools.HttpParserError as exc:
            if self.complete:  # what followed the response is no part of it
                self._unasked()
            elif isinstance(exc.__context__, ProtocolFailure):  # raised by a callback below
                self._fail(exc.__context__)
            else:
                self._fail(ProtocolFailure(f"invalid HTTP from backend: {exc}"))
        if self.status == 0 and self.head_bytes > self.limits.size:
            # httptools buffers a header until its end: bound what an unfinished head holds.
            self._fail(ProtocolFailure(f"backend response head over {self.limits.size} bytes"))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.complete:
            if not self.head_sent and self.exchanging:
                self._fail(ClosedBeforeSending("connection closed before the request was sent"))
            elif self.head_waiter is not None or self.status == 0:
                self._fail(ResetBeforeResponse("connection closed before a response"))
            elif self.until_close and exc is None:
                self.complete = True
                self.keep_alive = False
                self._wake()
            else:
                self._fail(ProtocolFailure("connection closed mid-response"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ResetBeforeResponse("connection closed while sending"))
        self.pool.forget(self)

    # a writer for the pool's batch (gateway.http.batch.Writer) ---------------
    def write(self, data: bytes) -> None:
        """Write the request's head (held in the pool's batch until now)."""
        self.head_sent = True
        cast(asyncio.Transport, self.transport).write(data)

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks ----------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            raise ProtocolFailure("backend sent another message after its response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_lines += 1
        self.head_size += len(name) + len(value) + 4
        if self.head_lines > self.limits.lines:
            raise ProtocolFailure(f"backend response head over {self.limits.lines} header lines")
        if self.head_size > self.limits.size:
            raise ProtocolFailure(f"backend response head over {self.limits.size} bytes")
        name = name.lower()
        if name in _FRAMING:
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx interim responses are not forwarded
            self.headers = []
            self.framed = False
            return
        self.status = status
        self.until_close = not self.framed and status not in (204, 304)
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.head_request:
            # A HEAD response has no body whatever its Content-Length says.
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        if self.complete:  # only after a HEAD response: bytes it announced but may not send
            raise ProtocolFailure("backend sent a body after its HEAD response")
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.reading_paused and self.transport:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # end of an interim (1xx) response
        self.complete = True
        # Read it now: httptools forgets the message's keep-alive state once it completes.
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # ------------------------------------------------------------------
    def _unasked(self) -> None:
        """The backend sent bytes no request asked for (a 408 on an idle connection, or
        more after a complete response): they are dropped with the connection."""
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
        if not self.exchanging:
            self.pool.forget(self)

    def _wake(self) -> None:
        waiter = self.body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        for waiter in (self.head_waiter, self.body_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def timeout(self, message: str) -> None:
        self._fail(UpstreamTimeout(message))

    def arm(self, deadline: float) -> None:
        """Fail the exchange with a timeout unless :meth:`disarm` comes by ``deadline``
        (loop time).  One timer per connection, not per exchange: deadlines move on with
        each request, and the timer is re-armed only when it fires before the current one."""
        self.deadline = deadline
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.pool.loop.call_at(deadline, self._deadline_passed)

    def disarm(self) -> None:
        self.deadline = 0.0

    def _deadline_passed(self) -> None:
        self._timer = None
        deadline = self.deadline
        if not deadline or self.closed:
            return
        loop = self.pool.loop
        if loop.time() >= deadline - _TIMER_SLACK:
            self.deadline = 0.0
            self.timeout("no response in time")
        else:  # armed again, later, since the timer was set
            self._timer = loop.call_at(deadline, self._deadline_passed)

    async def write_body(self, stream: AsyncIterator[bytes], length: int | None) -> None:
        """Send a streamed body: raw when its ``length`` is declared, else chunked.

        A declared body's last bytes are held until the stream has ended, so a stream
        longer than declared never leaves a complete request at the backend."""
        transport = self.transport
        assert transport is not None
        sent = 0
        held = b""
        async for chunk in stream:
            if self.error is not None:  # the deadline passed, or the backend broke off
                raise self.error
            if self.closed:
                raise ResetBeforeResponse("connection closed while sending the body")
            if not chunk:
                continue
            sent += len(chunk)
            if length is None:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            elif sent > length:
                raise LengthMismatch(f"request body longer than its Content-Length of {length}")
            elif sent == length:
                held = chunk
            else:
                transport.write(chunk)
            if self._write_paused:
                self._drain = self.pool.loop.create_future()
                await self._drain
        if length is None:
            transport.write(b"0\r\n\r\n")
        elif sent < length:
            raise LengthMismatch(f"request body ended after {sent} of its {length} bytes")
        else:
            transport.write(held)


class PooledResponse:
    """A response whose body is read from its connection as it arrives."""

    __slots__ = ("status", "headers", "_conn", "_timer_s", "_released")

    def __init__(self, conn: Connection, idle_timeout: float) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self._timer_s = idle_timeout
        self._released = False

    def complete_body(self) -> bytes | None:
        conn = self._conn
        if not conn.complete:
            return None
        body = b"".join(conn.body) if len(conn.body) != 1 else conn.body[0]
        conn.body.clear()
        self.close()
        return body

    def chunks(self) -> BodyChunks:
        """The body as it arrives; the connection goes back to the pool once it has
        ended (or failed, or :meth:`close` is called)."""
        return BodyChunks(self)

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.pool.release(conn, conn.keep_alive and conn.error is None and not conn.closed)


class BodyChunks:
    """:meth:`PooledResponse.chunks`: an async iterator over the body (a class, not an
    async generator, so that it compiles to native code)."""

    __slots__ = ("_response",)

    def __init__(self, response: PooledResponse) -> None:
        self._response = response

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        conn = self._response._conn
        try:
            while True:
                if conn.body:
                    chunk = conn.body.popleft()
                    conn.buffered -= len(chunk)
                    if conn.reading_paused and conn.buffered < _HIGH_WATER // 2:
                        conn.reading_paused = False
                        if conn.transport is not None:
                            conn.transport.resume_reading()
                    return chunk
                if conn.complete:
                    raise StopAsyncIteration
                if conn.error is not None:
                    raise conn.error
                loop = conn.pool.loop
                conn.body_waiter = loop.create_future()
                stall = self._response._timer_s
                timer = loop.call_later(stall, conn.timeout, "backend body stalled")
                try:
                    await conn.body_waiter
                finally:
                    timer.cancel()
                    conn.body_waiter = None
        except BaseException:
            self._response.close()
            raise
