"""A request answered below ASGI (NativeCycle): keep-alive, pipelining, framing, HEAD,
100-continue, handler failures, and the statuses after which the connection closes."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.http.wire import exchange, served


async def test_keep_alive_pipelining_and_framing_below_asgi() -> None:
    with served() as server:
        # two pipelined requests on one connection, answered in order, framed by length
        got = await exchange(
            server.port,
            b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz",
            b"HTTP/1.1 200",
            2,
        )
        first, second = got.split(b"HTTP/1.1 200 OK\r\n")[1:]
        assert b"content-length: 11\r\n" in first and first.endswith(b"\r\n\r\nGET /a x=1 ")
        assert b"x-client: 127.0.0.1" in first and b"connection: close" not in first
        assert second.endswith(b"POST /b  xyz")
        # a streamed body without a length is chunked; empty writes send nothing
        got = await exchange(server.port, b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n", b"0\r\n\r\n")
        assert got.endswith(b"transfer-encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")
        # HEAD: the head only; HTTP/1.0: the connection closes after the answer
        got = await exchange(server.port, b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", b"\r\n\r\n")
        assert got.endswith(b"\r\n\r\n") and b"HEAD" not in got
        got = await exchange(server.port, b"GET /f?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n", b"q=1 ")
        assert got.endswith(b"GET /f q=1 ")  # a fragment is not part of the query
        got = await exchange(server.port, b"GET /old HTTP/1.0\r\n\r\n", b"never")
        assert b"connection: close\r\n" in got and got.endswith(b"GET /old  ")


async def test_expect_continue_and_a_failing_handler() -> None:
    with served() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        writer.write(b"ok")
        answer = await asyncio.wait_for(reader.readuntil(b"POST /up  ok"), 5)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        writer.close()
        got = await exchange(server.port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n", b"never")
        assert got.startswith(b"HTTP/1.1 500 ") and got.endswith(b'internal gateway error"}')


@pytest.mark.parametrize(
    ("status", "closes"), [(400, True), (413, True), (431, True), (404, False), (502, False)]
)
async def test_the_connection_closes_after_the_statuses_nginx_closes_after(
    status: int, closes: bool
) -> None:
    with served() as server:
        got = await exchange(
            server.port,
            b"GET /status/%d HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"
            % status,
            b"never" if closes else b"GET /next  ",  # read until closed, or the second answer
        )
    assert got.startswith(b"HTTP/1.1 %d " % status)
    assert (b"connection: close\r\n" in got) is closes
    assert got.endswith(b"status") if closes else got.endswith(b"GET /next  ")


async def test_http_1_0_keeps_alive_only_when_asked() -> None:
    with served() as server:
        got = await exchange(
            server.port,
            b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
            b"never",  # read until the server closes, after the second
        )
        first, second = got.split(b"HTTP/1.1 200 OK\r\n")[1:]
        assert b"connection: keep-alive\r\n" in first and first.endswith(b"GET /a  ")
        assert b"connection: close\r\n" in second and second.endswith(b"GET /b  ")
        # a streamed body to an HTTP/1.0 client is delimited by the close, not chunked
        got = await exchange(
            server.port, b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b"never"
        )
        assert b"chunked" not in got and b"connection: close\r\n" in got
        assert got.endswith(b"\r\n\r\nabcd")
