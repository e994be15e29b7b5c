"""The upstream transport: a lean pooled HTTP/1.1 client on asyncio protocols and httptools.

This is the only module that speaks HTTP to backends on the hot path (httpx was
measured ~35x slower here; it serves tests, the CLI and low-rate calls).  The
proxy sees the small :class:`Transport` interface, which tests can replace.

Errors (all :class:`UpstreamError`; ``kind`` names the retry condition)::

    UpstreamError
     ├── ConnectFailure   kind="connect-failure"  nothing was sent: always safe to retry
     ├── ResetBeforeResponse kind="reset"         the request may have reached the backend
     ├── UpstreamTimeout  kind="timeout"
     └── ProtocolFailure  kind="protocol"         the backend spoke broken HTTP
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, cast

import httptools


class UpstreamError(Exception):
    kind = "error"
    #: True when the request certainly never reached the backend.
    unsent = False


class ConnectFailure(UpstreamError):
    kind = "connect-failure"
    unsent = True


class ResetBeforeResponse(UpstreamError):
    kind = "reset"


class UpstreamTimeout(UpstreamError):
    kind = "timeout"


class ProtocolFailure(UpstreamError):
    kind = "protocol"


Headers = list[tuple[bytes, bytes]]

_HIGH_WATER = 256 * 1024  # response bytes buffered before we stop reading the backend
# Idle connections older than this are not reused: a backend closing an idle keep-alive
# connection while we send on it looks like a reset, which is unsafe to retry for writes.
# uvicorn's default keep-alive is 5 s, nginx's 75 s.
IDLE_REUSE_LIMIT = 4.0


@dataclass(slots=True)
class UpstreamRequest:
    method: bytes
    target: bytes  # origin-form path and query
    headers: Headers  # already filtered; no framing headers
    body: bytes = b""  # the whole body, when it is known
    stream: AsyncIterator[bytes] | None = None  # or a body to stream (chunked)
    head: bool = False


class UpstreamResponse(Protocol):
    status: int
    headers: Headers

    def complete_body(self) -> bytes | None:
        """The whole body if it has already arrived (then the response is done), else None."""
        ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Send one request to ``host:port`` and return once the response head arrived."""

    async def send(
        self,
        host: str,
        port: int,
        request: UpstreamRequest,
        connect_timeout: float,
        response_timeout: float,
        pool_size: int,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = True  # part of the pool's total until dropped
        self.idle_since = 0.0
        self._reset_exchange()
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False

    def _reset_exchange(self) -> None:
        # httptools parses one message after another on a kept-alive connection; only a
        # HEAD response (whose Content-Length announces no body) leaves it out of step.
        if getattr(self, "head_request", True):
            self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: Headers = []
        self.head_waiter: asyncio.Future[None] | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.body_waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.error: UpstreamError | None = None
        self.reading_paused = False
        self.head_request = False
        self.until_close = False  # body delimited by the connection closing (RFC 9112 6.3)

    # asyncio protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolFailure("backend switched protocols on a plain request"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolFailure(f"invalid HTTP from backend: {exc}"))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            if self.head_waiter is not None or self.status == 0:
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

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks ----------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status < 200:  # 1xx interim responses are not forwarded
            self.headers = []
            self.status = 0
            return
        framed = any(n in (b"content-length", b"transfer-encoding") for n, _ in self.headers)
        self.until_close = not framed and self.status not in (204, 304)
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.head_request:
            # A HEAD response has no body whatever its Content-Length says.
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
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

    async def write_stream(self, stream: AsyncIterator[bytes]) -> None:
        assert self.transport is not None
        async for chunk in stream:
            if self.closed:
                raise ResetBeforeResponse("connection closed while sending the body")
            if chunk:
                self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if self._write_paused:
                self._drain = self.pool.loop.create_future()
                await self._drain
        self.transport.write(b"0\r\n\r\n")


class _Response:
    """A response whose body is read from its connection as it arrives."""

    __slots__ = ("status", "headers", "_conn", "_timer_s", "_released")

    def __init__(self, conn: _Connection, idle_timeout: float) -> None:
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

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        loop = conn.pool.loop
        try:
            while True:
                while conn.body:
                    chunk = conn.body.popleft()
                    conn.buffered -= len(chunk)
                    if conn.reading_paused and conn.buffered < _HIGH_WATER // 2:
                        conn.reading_paused = False
                        if conn.transport is not None:
                            conn.transport.resume_reading()
                    yield chunk
                if conn.complete:
                    return
                if conn.error is not None:
                    raise conn.error
                conn.body_waiter = loop.create_future()
                timer = loop.call_later(self._timer_s, conn.timeout, "backend body stalled")
                try:
                    await conn.body_waiter
                finally:
                    timer.cancel()
                    conn.body_waiter = None
        finally:
            self.close()

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.pool.release(conn, conn.keep_alive and conn.error is None and not conn.closed)


class _Pool:
    def __init__(self, host: str, port: int, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.host, self.port, self.size = host, port, size
        self.loop = loop
        self.idle: list[_Connection] = []
        self.total = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def _take_idle(self) -> _Connection | None:
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_REUSE_LIMIT:
                return conn
            self._drop(conn)
        return None

    async def acquire(self, connect_timeout: float) -> _Connection:
        conn = self._take_idle()
        if conn is not None:
            return conn
        while self.total >= self.size:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
                raise
            conn = self._take_idle()
            if conn is not None:
                return conn
        self.total += 1
        try:
            return await self._connect(connect_timeout)
        except BaseException:
            self.total -= 1
            self._notify()
            raise

    async def _connect(self, timeout: float) -> _Connection:
        loop = self.loop
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
        except TimeoutError as exc:
            raise ConnectFailure(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ConnectFailure(f"connect to {self.host}:{self.port}: {exc.strerror}") from exc
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def release(self, conn: _Connection, reusable: bool) -> None:
        if reusable:
            conn._reset_exchange()
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
            self._notify()
        else:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn.transport is not None and not conn.closed:
            conn.transport.close()
        if conn.counted:
            conn.counted = False
            self.total -= 1
            self._notify()

    def forget(self, conn: _Connection) -> None:
        """The backend closed a connection.  An idle one leaves the pool now; a busy
        one is dropped by the exchange that holds it, when it releases it."""
        if conn in self.idle:
            self.idle.remove(conn)
            self._drop(conn)

    def _notify(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        while self.idle:
            self._drop(self.idle.pop())


class PooledTransport:
    """Keep-alive connection pools per backend address."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int], _Pool] = {}

    def _pool(self, host: str, port: int, size: int) -> _Pool:
        pool = self._pools.get((host, port))
        if pool is None:
            loop = asyncio.get_running_loop()
            pool = self._pools[(host, port)] = _Pool(host, port, size, loop)
        pool.size = size
        return pool

    async def send(
        self,
        host: str,
        port: int,
        request: UpstreamRequest,
        connect_timeout: float,
        response_timeout: float,
        pool_size: int,
    ) -> UpstreamResponse:
        pool = self._pool(host, port, pool_size)
        conn = await pool.acquire(connect_timeout)
        conn.head_request = request.head
        head = [request.method, b" ", request.target, b" HTTP/1.1\r\n"]
        for name, value in request.headers:
            head += (name, b": ", value, b"\r\n")
        if request.stream is not None:
            head.append(b"transfer-encoding: chunked\r\n\r\n")
        else:
            if request.body or request.method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
                head += (b"content-length: ", b"%d" % len(request.body), b"\r\n")
            head += (b"\r\n", request.body)
        loop = pool.loop
        conn.head_waiter = loop.create_future()
        timer = loop.call_later(response_timeout, conn.timeout, "no response in time")
        transport = conn.transport
        assert transport is not None
        try:
            transport.write(b"".join(head))
            if request.stream is not None:
                await conn.write_stream(request.stream)
            await conn.head_waiter
        except BaseException:
            pool.release(conn, False)
            raise
        finally:
            timer.cancel()
            conn.head_waiter = None
        return _Response(conn, response_timeout)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
