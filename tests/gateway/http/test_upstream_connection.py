"""One upstream connection fed bytes directly, with a recording transport and pool (the
raw-socket tests through the pool are in test_upstream.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.http.upstream_connection import Connection, HeadLimits, PooledResponse
from gateway.http.upstream_errors import LengthMismatch, ProtocolFailure


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


class FakePool:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.released: list[bool] = []
        self.forgotten: list[Connection] = []

    def release(self, conn: Connection, reusable: bool) -> None:
        self.released.append(reusable)
        conn.exchanging = False
        if reusable:
            conn.reset()

    def forget(self, conn: Connection) -> None:
        self.forgotten.append(conn)


def connected(limits: HeadLimits | None = None) -> tuple[Connection, FakeTransport, FakePool]:
    pool = FakePool()
    conn = Connection(pool, limits or HeadLimits())
    transport = FakeTransport()
    conn.connection_made(transport)
    return conn, transport, pool


async def exchange(conn: Connection, *pieces: bytes, head: bool = False) -> None:
    """Start an exchange and feed the backend's bytes; the head must arrive."""
    conn.exchanging = conn.head_sent = True
    conn.head_request = head
    conn.head_waiter = asyncio.get_running_loop().create_future()
    for piece in pieces:
        conn.data_received(piece)
    await conn.head_waiter
    conn.head_waiter = None


async def test_bytes_on_an_idle_connection_close_it_and_leave_the_pool() -> None:
    conn, transport, pool = connected()
    await exchange(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    PooledResponse(conn, 1).close()
    assert pool.released == [True] and not transport.closing
    conn.data_received(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.closing and pool.forgotten == [conn]
    assert conn.status == 0  # nothing was parsed as a response


async def test_body_bytes_after_a_head_response_are_unasked() -> None:
    conn, transport, pool = connected()
    await exchange(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", head=True)
    response = PooledResponse(conn, 1)
    assert response.complete_body() == b""
    assert transport.closing and pool.released == [False]


async def test_a_message_split_after_its_end_is_still_never_reused() -> None:
    conn, transport, pool = connected()
    await exchange(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    response = PooledResponse(conn, 1)
    conn.data_received(b"HTTP/1.1 200 OK\r\n")  # the next packet: more than was asked for
    assert response.headers == [(b"content-length", b"2")]
    assert response.complete_body() == b"ok"
    assert transport.closing and pool.released == [False]


async def test_interim_heads_count_against_the_limits() -> None:
    conn, transport, _ = connected(HeadLimits(size=10_000, lines=5))
    conn.exchanging = conn.head_sent = True
    conn.head_waiter = asyncio.get_running_loop().create_future()
    conn.data_received(b"HTTP/1.1 103 Early Hints\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n")
    assert conn.error is None
    conn.data_received(b"HTTP/1.1 200 OK\r\nd: 4\r\ne: 5\r\nf: 6\r\n\r\n")
    with pytest.raises(ProtocolFailure, match="over 5 header lines"):
        await conn.head_waiter
    assert transport.closing


async def test_an_unfinished_head_is_bounded_before_httptools_buffers_it_all() -> None:
    conn, transport, _ = connected(HeadLimits(size=1000, lines=100))
    conn.exchanging = conn.head_sent = True
    conn.head_waiter = asyncio.get_running_loop().create_future()
    conn.data_received(b"HTTP/1.1 200 OK\r\nx-long: " + b"a" * 600)
    assert conn.error is None
    conn.data_received(b"a" * 600)  # still no end of the header line
    with pytest.raises(ProtocolFailure, match="over 1000 bytes"):
        await conn.head_waiter
    assert transport.closing


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_declared_body_holds_its_last_bytes_until_the_stream_ends() -> None:
    conn, transport, _ = connected()
    await conn.write_body(pieces(b"abc", b"", b"defg"), 7)
    assert transport.written == [b"abc", b"defg"]

    conn, transport, _ = connected()
    with pytest.raises(LengthMismatch, match="longer than its Content-Length of 7"):
        await conn.write_body(pieces(b"abc", b"defg", b"h"), 7)
    assert transport.written == [b"abc"]  # never the whole declared body

    conn, transport, _ = connected()
    await conn.write_body(pieces(b"abc", b"defg"), None)
    assert transport.written == [b"3\r\nabc\r\n", b"4\r\ndefg\r\n", b"0\r\n\r\n"]
