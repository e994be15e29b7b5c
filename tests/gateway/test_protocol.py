"""The gateway's HTTP/1.1 protocol: requests served below ASGI (keep-alive, pipelining,
framing, 100-continue, handler failures), and refusals the ASGI scope cannot express."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gateway.downstream import Request, Responder
from gateway.protocol import protocol_class
from tests.gateway.support import backends, config_text, gateway, raw_request
from tests.harness import UvicornThread


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"400",
        ),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"400"),
        (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", b"40"),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 200000000\r\n\r\n", b"413"),
    ],
    ids=["cl-and-te", "oversize-header", "absolute-form", "connect", "body-too-large"],
)
async def test_malformed_and_hostile_requests(request_bytes: bytes, status: bytes) -> None:
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            answer = await raw_request(gw.port, request_bytes)
            # the backend never saw the foreign host
            assert b"evil" not in answer
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


async def _echo(request: Request, io: Responder) -> None:
    """A handler that answers in the ways the proxy does, chosen by path."""
    body = b""
    if request.method == "POST":
        more = True
        while more:
            chunk, more = await io.read()
            body += chunk
    if request.path == b"/stream":
        await io.start(200, [(b"x-kind", b"stream")])
        for piece in (b"ab", b"", b"cd"):
            await io.write(piece)
        await io.end()
    elif request.path == b"/boom":
        raise RuntimeError("handler failed")
    else:
        text = b"%b %b %b %b" % (request.method.encode(), request.path, request.query, body)
        await io.respond(200, [(b"x-client", request.client.encode())], text)


@contextmanager
def served(handler: Any = _echo, **options: Any) -> Iterator[UvicornThread]:
    async def asgi(scope: Any, receive: Any, send: Any) -> None:  # WebSocket/lifespan only
        raise AssertionError("plain HTTP must not reach the ASGI app")

    with UvicornThread(asgi, http=protocol_class(handler, 65536), **options) as server:
        yield server


async def _exchange(port: int, data: bytes, until: bytes, count: int = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    got = b""
    try:
        while got.count(until) < count:
            piece = await asyncio.wait_for(reader.read(65536), 5)
            if not piece:
                break
            got += piece
    finally:
        writer.close()
    return got


async def test_keep_alive_pipelining_and_framing_below_asgi() -> None:
    with served() as server:
        # two pipelined requests on one connection, answered in order, framed by length
        got = await _exchange(
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
        got = await _exchange(server.port, b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n", b"0\r\n\r\n")
        assert got.endswith(b"transfer-encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")
        # HEAD: the head only; HTTP/1.0: the connection closes after the answer
        got = await _exchange(server.port, b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", b"\r\n\r\n")
        assert got.endswith(b"\r\n\r\n") and b"HEAD" not in got
        got = await _exchange(server.port, b"GET /f?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n", b"q=1 ")
        assert got.endswith(b"GET /f q=1 ")  # a fragment is not part of the query
        got = await _exchange(server.port, b"GET /old HTTP/1.0\r\n\r\n", b"never")
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
        got = await _exchange(server.port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n", b"never")
        assert got.startswith(b"HTTP/1.1 500 ") and got.endswith(b'internal gateway error"}')


async def test_idle_connections_are_closed_after_keep_alive() -> None:
    with served(timeout_keep_alive=1) as server:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"GET /one  "), 5)).startswith(
            b"HTTP/1.1 200"
        )
        idle = loop.time()
        assert await asyncio.wait_for(reader.read(1), 5) == b""  # closed by the server
        assert 1 <= loop.time() - idle < 3
        writer.close()
        # a connection that never sends a request is closed too
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        writer.close()


async def test_a_client_trickling_its_head_is_cut_off() -> None:
    with backends("legacy") as b:
        text = config_text(
            {"legacy": b["legacy"].url},
            "  - {name: all, split: {legacy: 1}}",
            "proxy: {client_timeout: 1s}\n",
        )
        with gateway(text) as (gw, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            started = asyncio.get_running_loop().time()
            closed = False
            for _ in range(20):  # one byte every 0.25 s: each byte would reset keep-alive
                await asyncio.sleep(0.25)
                try:
                    writer.write(b"a")
                    await writer.drain()
                except ConnectionError:
                    closed = True
                    break
                if reader.at_eof() or writer.is_closing():
                    closed = True
                    break
                try:
                    if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            writer.close()
    assert closed
    assert asyncio.get_running_loop().time() - started < 3
