"""The upstream transport: a lean pooled HTTP/1.1 client on asyncio protocols and httptools.

This is the only module that speaks HTTP to backends on the hot path (httpx was
measured ~35x slower here; it serves tests, the CLI and low-rate calls).  The
proxy sees the small :class:`Transport` interface, which tests can replace.  The
connection itself is :mod:`gateway.http.upstream_connection`; the errors
(:class:`UpstreamError` and its kinds) are :mod:`gateway.http.upstream_errors`, and
importable from here too.

A send has one deadline, ``response_timeout`` from the call: waiting for a pooled
connection, connecting, sending and the response head all count against it.  At
most ``max_pending`` requests wait for a connection to one backend; more are
refused at once (:class:`PoolOverflow`), as Envoy's ``max_pending_requests`` does.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol, cast

from gateway.http.batch import WriteBatch
from gateway.http.response import header_lines
from gateway.http.upstream_connection import Connection, HeadLimits, PooledResponse
from gateway.http.upstream_errors import (
    ClosedBeforeSending,
    ConnectFailure,
    DeadlineSpent,
    LengthMismatch,
    PoolOverflow,
    PoolTimeout,
    ProtocolFailure,
    ResetBeforeResponse,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.types import Headers

__all__ = [
    "ClosedBeforeSending",
    "ConnectFailure",
    "DeadlineSpent",
    "HeadLimits",
    "Headers",
    "LengthMismatch",
    "PoolOverflow",
    "PoolTimeout",
    "PooledTransport",
    "ProtocolFailure",
    "ResetBeforeResponse",
    "Transport",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamTimeout",
]

# Idle connections older than this are not reused: a backend closing an idle keep-alive
# connection while we send on it looks like a reset, which is unsafe to retry for writes
# (unless the close came before the request's head was written: ClosedBeforeSending).
# uvicorn's default keep-alive is 5 s, nginx's 75 s.
IDLE_REUSE_LIMIT: Final = 4.0
#: methods whose empty body goes without a Content-Length
_NO_BODY_METHODS: Final = frozenset({b"GET", b"HEAD", b"DELETE", b"OPTIONS"})
MAX_PENDING: Final = 1024  # requests waiting for a connection to one backend (Envoy's default)


@dataclass(slots=True, init=False)
class UpstreamRequest:
    method: bytes
    target: bytes  # origin-form path and query
    headers: Headers  # already filtered; no framing headers
    body: bytes = b""  # the whole body, when it is known
    stream: AsyncIterator[bytes] | None = None  # or a body to stream
    head: bool = False
    # The streamed body's declared size: sent as Content-Length and checked; None: chunked.
    length: int | None = None

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes = b"",
        stream: AsyncIterator[bytes] | None = None,
        head: bool = False,
        length: int | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.stream = stream
        self.head = head
        self.length = length


def request_head(request: UpstreamRequest) -> bytes:
    """The request line, headers and framing; with the whole body, if it is known."""
    head = [request.method, b" ", request.target, b" HTTP/1.1\r\n"]
    header_lines(head, request.headers)
    if request.stream is not None:
        if request.length is None:
            head.append(b"transfer-encoding: chunked\r\n\r\n")
        else:
            head.append(b"content-length: %d\r\n\r\n" % request.length)
    elif request.body:
        head += (b"content-length: %d\r\n\r\n" % len(request.body), request.body)
    elif request.method in _NO_BODY_METHODS:
        head.append(b"\r\n")
    else:
        head.append(b"content-length: 0\r\n\r\n")
    return b"".join(head)


class UpstreamResponse(Protocol):
    status: int
    headers: Headers

    def complete_body(self) -> bytes | None:
        """The whole body if it has already arrived (then the response is done), else None."""
        ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Send one request to ``host:port`` and return once the response head arrived,
    within ``response_timeout`` of the call (pool wait and connecting included)."""

    async def send(
        self,
        host: str,
        port: int,
        request: UpstreamRequest,
        connect_timeout: float,
        response_timeout: float,
        pool_size: int,
        max_pending: int | None = None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _Pool:
    def __init__(
        self,
        host: str,
        port: int,
        size: int,
        loop: asyncio.AbstractEventLoop,
        limits: HeadLimits,
        max_pending: int,
    ) -> None:
        self.host, self.port, self.size = host, port, size
        self.loop = loop
        self.batch = WriteBatch(loop)  # request heads, sent back to back once a turn
        self.limits = limits
        self.max_pending = max_pending
        self.idle: list[Connection] = []
        self.total = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_idle(self) -> Connection | None:
        """The most recently used idle connection still fit for reuse, if any."""
        idle = self.idle
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_REUSE_LIMIT:
                return conn
            self._drop(conn)
        return None

    async def acquire(self, connect_timeout: float, deadline: float) -> Connection:
        """A connection, idle or new, by ``deadline`` (the loop's clock)."""
        conn = self.take_idle()
        if conn is not None:
            return conn
        while self.total >= self.size:
            await self._wait(deadline)
            conn = self.take_idle()
            if conn is not None:
                return conn
        self.total += 1
        try:
            return await self._connect(connect_timeout, deadline)
        except BaseException:
            self.total -= 1
            self._notify()
            raise

    async def _wait(self, deadline: float) -> None:
        """Wait for a connection to come back or be dropped."""
        if len(self.waiters) >= self.max_pending:
            raise PoolOverflow(
                f"{len(self.waiters)} requests already wait for a connection to "
                f"{self.host}:{self.port} (max_pending {self.max_pending})"
            )
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._notify()  # woken but leaving: hand the turn on
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(
                    f"no connection to {self.host}:{self.port} came free in time "
                    f"({self.size} in use)"
                ) from None
            raise

    def _protocol(self) -> asyncio.Protocol:
        # A Connection has every asyncio.Protocol method without inheriting the class.
        return cast(asyncio.Protocol, Connection(self, self.limits))

    async def _connect(self, timeout: float, deadline: float) -> Connection:
        loop = self.loop
        budget = deadline - loop.time()
        try:
            async with asyncio.timeout(min(timeout, budget)):
                _, protocol = await loop.create_connection(self._protocol, self.host, self.port)
        except TimeoutError as exc:
            if budget < timeout:
                message = f"connect to {self.host}:{self.port} unfinished at the deadline"
                raise PoolTimeout(message) from exc
            raise ConnectFailure(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ConnectFailure(f"connect to {self.host}:{self.port}: {exc.strerror}") from exc
        conn = cast(Connection, protocol)
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def release(self, conn: Connection, reusable: bool) -> None:
        conn.exchanging = False
        if reusable:
            conn.reset()
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
            self._notify()
        else:
            self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        if conn.transport is not None and not conn.closed:
            conn.transport.close()
        if conn.counted:
            conn.counted = False
            self.total -= 1
            self._notify()

    def forget(self, conn: Connection) -> None:
        """A connection closed while idle (by the backend, or after unasked bytes) leaves
        the pool now; a busy one is dropped by the exchange that holds it, on release."""
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

    def __init__(self, limits: HeadLimits | None = None, max_pending: int = MAX_PENDING) -> None:
        self._pools: dict[tuple[str, int], _Pool] = {}
        self._limits = limits or HeadLimits()
        self._max_pending = max_pending

    def _pool(self, host: str, port: int, size: int, max_pending: int | None) -> _Pool:
        pool = self._pools.get((host, port))
        if pool is None:
            loop = asyncio.get_running_loop()
            pool = _Pool(host, port, size, loop, self._limits, self._max_pending)
            self._pools[(host, port)] = pool
        pool.size = size
        pool.max_pending = self._max_pending if max_pending is None else max_pending
        return pool

    async def send(
        self,
        host: str,
        port: int,
        request: UpstreamRequest,
        connect_timeout: float,
        response_timeout: float,
        pool_size: int,
        max_pending: int | None = None,
    ) -> UpstreamResponse:
        pool = self._pool(host, port, pool_size, max_pending)
        loop = pool.loop
        deadline = loop.time() + response_timeout
        conn = pool.take_idle() or await pool.acquire(connect_timeout, deadline)
        conn.exchanging = True
        transport = conn.transport
        if transport is None or transport.is_closing():  # it spoke before being asked
            pool.release(conn, False)
            raise ConnectFailure(f"{host}:{port} sent bytes before the request")
        if loop.time() >= deadline:
            pool.release(conn, True)
            raise PoolTimeout(f"no connection to {host}:{port} before the deadline")
        conn.head_request = request.head
        conn.head_waiter = loop.create_future()
        conn.arm(deadline)
        try:
            if request.stream is None:
                conn.head_sent = False  # until the batch writes it
                pool.batch.write(conn, request_head(request))
            else:
                conn.write(request_head(request))
                await conn.write_body(request.stream, request.length)
            await conn.head_waiter
        except BaseException:
            pool.release(conn, False)
            raise
        finally:
            conn.disarm()
            conn.head_waiter = None
        return PooledResponse(conn, response_timeout)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
