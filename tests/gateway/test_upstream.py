"""The pooled upstream transport against small raw HTTP servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.upstream import (
    ConnectFailure,
    PooledTransport,
    ProtocolFailure,
    ResetBeforeResponse,
    UpstreamRequest,
    UpstreamTimeout,
)
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
        with pytest.raises(ResetBeforeResponse):
            await get(t, port)
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
