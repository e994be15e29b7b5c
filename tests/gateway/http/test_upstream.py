"""The pooled upstream transport against small raw HTTP servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.http.upstream import (
    ClosedBeforeSending,
    ConnectFailure,
    HeadLimits,
    LengthMismatch,
    PooledTransport,
    PoolOverflow,
    PoolTimeout,
    ProtocolFailure,
    ResetBeforeResponse,
    UpstreamRequest,
    UpstreamTimeout,
)
from gateway.http.upstream_connection import Connection
from tests.eventually import eventually
from tests.harness import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A server running ``handler`` per connection; yields (port, connection counter)."""
    connections = [0]

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def keep_alive(body: bytes = b"hello") -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()

    return handler


async def get(
    t: PooledTransport, port: int, method: bytes = b"GET", timeout: float = 5
) -> tuple[int, bytes]:
    response = await t.send(
        "127.0.0.1",
        port,
        UpstreamRequest(method, b"/", [(b"host", b"x")], head=method == b"HEAD"),
        1,
        timeout,
        8,
    )
    body = b"".join([c async for c in response.chunks()])
    return response.status, body


async def test_keep_alive_connection_is_reused() -> None:
    t = PooledTransport()
    async with raw_server(keep_alive()) as (port, connections):
        for _ in range(20):
            assert await get(t, port) == (200, b"hello")
        assert await get(t, port, b"HEAD") == (200, b"")
        assert await get(t, port) == (200, b"hello")  # the HEAD left the connection usable
    await t.aclose()
    assert connections[0] == 1


async def test_chunked_interim_and_read_until_close_responses() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
        await writer.drain()

    t = PooledTransport()
    async with raw_server(handler) as (port, _):
        assert await get(t, port) == (200, b"abcde")
        assert await get(t, port) == (200, b"until close")
    await t.aclose()


async def test_connect_failure_and_reset_are_told_apart() -> None:
    t = PooledTransport()
    with pytest.raises(ConnectFailure):
        await get(t, free_port())

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(hang_up) as (port, _):
        with pytest.raises(ResetBeforeResponse) as reset:
            await get(t, port)
    assert not reset.value.unsent  # the backend had read the request
    await t.aclose()


class Sink:
    """A writer that keeps what it is sent."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def post_while_its_head_is_held(
    t: PooledTransport, port: int
) -> tuple[Connection, asyncio.Future[tuple[int, bytes]]]:
    """A POST on the pool's one kept-alive connection, its head held to the loop's next
    turn (as on a busy loop: the turn before made several writes): the connection and the
    POST."""
    assert await get(t, port) == (200, b"hello")
    (pool,) = t._pools.values()
    (conn,) = pool.idle
    elsewhere = Sink()
    pool.batch.write(elsewhere, b"1")
    pool.batch.write(elsewhere, b"2")
    await asyncio.sleep(0)  # that busy turn's writes are made
    assert elsewhere.written == [b"1", b"2"]
    sending = asyncio.ensure_future(get(t, port, b"POST"))
    await asyncio.sleep(0)
    assert conn.exchanging and not conn.head_sent
    return conn, sending


async def test_a_connection_closed_before_its_held_head_went_out_leaves_the_request_unsent() -> (
    None
):
    t = PooledTransport()
    async with raw_server(keep_alive()) as (port, _):
        conn, sending = await post_while_its_head_is_held(t, port)
        conn.close()  # the connection closes first (a keep-alive race)
        with pytest.raises(ClosedBeforeSending) as closed:
            await sending
    assert closed.value.unsent and closed.value.kind == "reset"
    await t.aclose()


async def test_bytes_read_while_the_head_is_held_are_unasked_and_leave_the_request_unsent() -> None:
    t = PooledTransport()
    async with raw_server(keep_alive()) as (port, _):
        conn, sending = await post_while_its_head_is_held(t, port)
        # the backend's idle timeout answers in the same turn: not the POST's answer
        conn.data_received(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
        with pytest.raises(ClosedBeforeSending):
            await sending
    await t.aclose()


async def test_timeout_and_broken_http() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(2)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)

    t = PooledTransport()
    async with raw_server(silent) as (port, _):
        with pytest.raises(UpstreamTimeout):
            await get(t, port, timeout=0.2)
    async with raw_server(garbage) as (port, _):
        with pytest.raises(ProtocolFailure):
            await get(t, port)
    await t.aclose()


async def test_deadline_holds_on_a_reused_connection_whatever_came_before() -> None:
    """One timer per connection: a later exchange with a shorter deadline, or one after
    many quick ones, still times out on time, and a quick one after it is unharmed."""
    answers = iter([0.0, 0.0, 1.0, 0.0])

    async def paced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            await asyncio.sleep(next(answers))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    t = PooledTransport()
    loop = asyncio.get_running_loop()
    async with raw_server(paced) as (port, connections):
        assert await get(t, port, timeout=30) == (200, b"ok")  # arms the timer 30 s out
        assert await get(t, port, timeout=30) == (200, b"ok")
        began = loop.time()
        with pytest.raises(UpstreamTimeout):
            await get(t, port, timeout=0.2)  # an earlier deadline than the timer's
        assert loop.time() - began < 0.9
        assert await get(t, port, timeout=5) == (200, b"ok")  # a fresh connection
        assert connections[0] == 2
    await t.aclose()


async def test_pool_size_bounds_concurrent_connections() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    t = PooledTransport()
    async with raw_server(slow) as (port, connections):

        async def one() -> int:
            response = await t.send("127.0.0.1", port, UpstreamRequest(b"GET", b"/", []), 1, 5, 3)
            _ = [c async for c in response.chunks()]
            return response.status

        assert await asyncio.gather(*(one() for _ in range(12))) == [200] * 12
    await t.aclose()
    assert connections[0] == 3


async def test_connection_closed_by_backend_while_idle_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # ... then the backend closes the idle connection (keep-alive timeout)

    t = PooledTransport()
    async with raw_server(once) as (port, connections):
        assert await get(t, port) == (200, b"ok")
        await asyncio.sleep(0.1)
        assert await get(t, port) == (200, b"ok")
    await t.aclose()
    assert connections[0] == 2


async def test_streamed_request_body_is_sent_chunked() -> None:
    received: list[bytes] = []

    async def echo_size(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        received.append(head)
        data = await reader.readuntil(b"0\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(len(data))), len(data))
        )
        await writer.drain()

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defg"

    t = PooledTransport()
    async with raw_server(echo_size) as (port, _):
        request = UpstreamRequest(b"POST", b"/", [(b"host", b"x")], stream=body())
        response = await t.send("127.0.0.1", port, request, 1, 5, 4)
        # the framed body "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n" is 22 bytes
        assert b"".join([c async for c in response.chunks()]) == b"22"
    await t.aclose()
    assert b"transfer-encoding: chunked" in received[0]


async def test_declared_length_streams_raw_bytes_with_content_length() -> None:
    heads: list[bytes] = []

    payload = (bytes(range(256)) * 1172)[:300_000]

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    received: list[bytes] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            if b"content-length: " in head.lower():
                size = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                received.append(await reader.readexactly(size))
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    t = PooledTransport()
    async with raw_server(keep) as (port, connections):
        request = UpstreamRequest(b"PUT", b"/big", [(b"host", b"x")], stream=body(), length=300_000)
        response = await t.send("127.0.0.1", port, request, 1, 5, 4)
        assert (response.status, b"".join([c async for c in response.chunks()])) == (201, b"ok")
        assert await get(t, port) == (201, b"ok")  # the raw body kept the framing in step
    await t.aclose()
    assert b"content-length: 300000\r\n" in heads[0]
    assert b"transfer-encoding" not in heads[0].lower()
    assert received[0] == payload
    assert connections[0] == 1


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ([b"0123456789"], "request body ended after 10 of its 20 bytes"),
        ([b"0123456789", b"0123456789", b"x"], "request body longer than its Content-Length of 20"),
    ],
)
async def test_stream_not_of_its_declared_length_is_refused(
    pieces: list[bytes], message: str
) -> None:
    got: list[bytes] = []

    async def until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got.append(await reader.read())  # everything until the gateway closes

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    t = PooledTransport()
    async with raw_server(until_eof) as (port, _):
        request = UpstreamRequest(b"PUT", b"/", [(b"host", b"x")], stream=body(), length=20)
        with pytest.raises(LengthMismatch, match=message) as caught:
            await t.send("127.0.0.1", port, request, 1, 2, 4)
        assert caught.value.kind == "length-mismatch"
        await eventually(lambda: got)  # the connection was closed ...
    await t.aclose()
    assert len(got[0]) < 20  # ... and never with a complete request on it


async def test_response_sent_on_an_idle_connection_reaches_nobody() -> None:
    go, closed = asyncio.Event(), asyncio.Event()
    served = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served[0] += 1
        if served[0] > 1:
            return await keep_alive(b"second")(reader, writer)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        await go.wait()
        # the idle connection timed out on the backend's side: it answers 408 unasked
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 8\r\n\r\ntoo late")
        await writer.drain()
        if await reader.read(1) == b"":
            closed.set()
        else:  # a request arrived on the connection that carried the 408
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
            await writer.drain()
            await reader.read()

    t = PooledTransport()
    async with raw_server(handler) as (port, connections):
        assert await get(t, port) == (200, b"first")
        go.set()
        await asyncio.wait_for(closed.wait(), 5)  # the gateway hung up on the 408
        assert await get(t, port) == (200, b"second")
    await t.aclose()
    assert connections[0] == 2


@pytest.mark.parametrize(
    "extra", [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", b"garbage\r\n\r\n"]
)
async def test_bytes_after_a_complete_response_are_never_forwarded(extra: bytes) -> None:
    served = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served[0] += 1
        if served[0] > 1:
            return await keep_alive(b"fresh")(reader, writer)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst" + extra)
        await writer.drain()
        await keep_alive(b"reused")(reader, writer)

    t = PooledTransport()
    async with raw_server(handler) as (port, connections):
        request = UpstreamRequest(b"GET", b"/", [(b"host", b"x")])
        response = await t.send("127.0.0.1", port, request, 1, 5, 4)
        assert b"".join([c async for c in response.chunks()]) == b"first"
        assert (response.status, response.headers) == (200, [(b"content-length", b"5")])
        assert await get(t, port) == (200, b"fresh")
    await t.aclose()
    assert connections[0] == 2


def big_head(lines: int, value: bytes = b"v") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-%d: %b\r\n" % (i, value) for i in range(lines))


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (big_head(1, b"a" * 2_000_000), "head over 65536 bytes"),
        (big_head(20_000), "head over 100 header lines"),
        (big_head(101), "head over 100 header lines"),
        (b"HTTP/1.1 103 Early Hints\r\n" + big_head(60)[17:] + b"\r\n" + big_head(50), "100 "),
    ],
    ids=["2MB", "20000-lines", "101-lines", "interim-heads-count"],
)
async def test_oversized_response_heads_are_protocol_failures(head: bytes, message: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        try:
            writer.write(head + b"Content-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.read()
        except ConnectionError:
            pass

    t = PooledTransport()
    async with raw_server(answer) as (port, _):
        with pytest.raises(ProtocolFailure, match=message):
            await get(t, port)
    await t.aclose()


async def test_a_head_at_the_limits_is_accepted() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(big_head(99) + b"Content-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    t = PooledTransport(HeadLimits(size=2000, lines=100))
    async with raw_server(answer) as (port, _):
        assert await get(t, port) == (200, b"ok")
    await t.aclose()


def silent() -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the gateway hangs up

    return handler


async def timed_sends(
    t: PooledTransport, port: int, n: int, timeout: float, pool: int, pending: int | None = None
) -> list[tuple[float, BaseException]]:
    """Send ``n`` GETs at once; (seconds until it failed, its error) for each."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one() -> tuple[float, BaseException]:
        try:
            request = UpstreamRequest(b"GET", b"/", [])
            await t.send("127.0.0.1", port, request, 1, timeout, pool, max_pending=pending)
        except Exception as exc:
            return loop.time() - start, exc
        raise AssertionError("a silent backend answered")

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_the_deadline_covers_waiting_for_a_pooled_connection() -> None:
    t = PooledTransport()
    async with raw_server(silent()) as (port, connections):
        outcomes = await timed_sends(t, port, 10, 1.0, 2)
    await t.aclose()
    assert all(isinstance(e, UpstreamTimeout) for _, e in outcomes), outcomes
    assert max(took for took, _ in outcomes) < 1.8  # not 1 s per round of 2 connections
    waited = [e for _, e in outcomes if isinstance(e, PoolTimeout)]
    assert len(waited) >= 7 and all(e.unsent for e in waited)
    assert connections[0] <= 3


async def test_too_many_waiting_requests_overflow_at_once() -> None:
    t = PooledTransport(max_pending=3)
    async with raw_server(silent()) as (port, _):
        outcomes = await timed_sends(t, port, 6, 1.0, 1)
        # per call, the backend's own setting wins over the transport's default
        strict = await timed_sends(t, port, 3, 0.5, 1, pending=0)
    await t.aclose()
    assert [type(e) for _, e in strict] == [UpstreamTimeout, PoolOverflow, PoolOverflow]
    overflowed = [(took, e) for took, e in outcomes if isinstance(e, PoolOverflow)]
    assert len(overflowed) == 2  # 1 sent, 3 waiting, 2 refused
    assert all(took < 0.5 and e.unsent and e.kind == "overflow" for took, e in overflowed)
    assert "3 requests already wait" in str(overflowed[0][1])
