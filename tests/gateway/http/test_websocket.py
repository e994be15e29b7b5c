"""WebSocket upgrades taken over from the HTTP server and served through an ASGI app:
the handshake, messages both ways, subprotocols, closes from either side, a rejection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.http.downstream import Request
from gateway.http.websocket import MAX_QUEUE, handshake_bytes, scope_of
from tests.eventually import eventually
from tests.gateway.http.wire import served


class EchoApp:
    """Accepts (with the first subprotocol offered) and echoes; ``/reject`` is closed
    before the accept, ``bye`` closes with 4001; the disconnect codes are kept."""

    def __init__(self) -> None:
        self.scopes: list[Any] = []
        self.disconnects: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"] == "/reject":
            await send({"type": "websocket.close", "code": 1008})
            return
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.append(message["code"])
                return
            if message.get("text") == "bye":
                await send({"type": "websocket.close", "code": 4001})
                return
            await send({**message, "type": "websocket.send"})


def test_the_handshake_and_its_scope() -> None:
    request = Request(
        "GET",
        b"/a%20b?x=1",
        b"/a%20b",
        b"x=1",
        [(b"host", b"h"), (b"sec-websocket-protocol", b"one, two")],
        "192.0.2.9",
    )
    assert handshake_bytes(request) == (
        b"GET /a%20b?x=1 HTTP/1.1\r\nhost: h\r\nsec-websocket-protocol: one, two\r\n\r\n"
    )
    scope = scope_of(request, ("127.0.0.1", 80))
    assert (scope["type"], scope["path"], scope["raw_path"]) == ("websocket", "/a b", b"/a%20b")
    assert scope["subprotocols"] == ["one", "two"] and scope["client"] == ("192.0.2.9", 0)
    assert scope["scheme"] == "ws" and scope["query_string"] == b"x=1"


async def test_messages_both_ways_and_closes_from_either_side() -> None:
    app = EchoApp()
    with served(app=app) as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with connect(f"{url}/echo?q=1", subprotocols=["chat"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
            await ws.send(["frag", "mented"])  # a message in fragments
            assert await ws.recv() == "fragmented"
        await eventually(lambda: app.disconnects == [1000])
        assert app.scopes[0]["query_string"] == b"q=1"
        async with connect(f"{url}/echo") as ws:
            await ws.send("bye")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        with pytest.raises(InvalidStatus) as rejected:
            async with connect(f"{url}/reject"):
                pass
        assert rejected.value.response.status_code == 403
        # plain HTTP on the same server is still served by the handler
        async with connect(f"{url}/echo") as ws:
            await ws.send("again")
            assert await ws.recv() == "again"


async def test_a_handshake_pipelined_behind_a_request_waits_for_its_answer() -> None:
    app = EchoApp()
    with served(app=app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        first = await asyncio.wait_for(reader.readuntil(b"GET /first  "), 5)
        assert first.startswith(b"HTTP/1.1 200 OK")
        upgrade = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert upgrade.startswith(b"HTTP/1.1 101 ")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in upgrade
        writer.close()


def _upgraded(port: int, receive_buffer: int | None = None) -> socket.socket:
    """A raw client socket, through the handshake and not a byte further."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


def _flood(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send ``data`` from a thread (blocking while the server does not read)."""

    def send() -> None:
        with contextlib.suppress(OSError):  # cut off when the test ends
            sock.sendall(data)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


async def test_a_client_that_pings_and_never_reads_stops_being_read() -> None:
    # Every ping is answered with a pong; a client that never reads them must not make
    # the server buffer its pongs without bound: reading stops while the buffer is full.
    with served(app=EchoApp()) as server:
        sock = _upgraded(server.port, receive_buffer=4096)
        ping = b"\x89\xfd" + b"\x00\x00\x00\x00" + b"p" * 125  # masked (zero key), 125 bytes
        sender = _flood(sock, ping * (64 * 1024 * 1024 // len(ping)))  # 64 MiB of them
        [session] = await eventually(lambda: list(server.server.sessions))
        transport = session.transport
        await eventually(lambda: not transport.is_reading())
        # what is buffered is bounded by the buffer's limit and one read's answers
        assert transport.get_write_buffer_size() < 1024 * 1024
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(5)


class Holding:
    """Accepts, then takes no message until ``go`` is set; then counts them all."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.texts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while not self.go.is_set():
            await asyncio.sleep(0.01)
        while (await receive())["type"] != "websocket.disconnect":
            self.texts += 1


async def test_a_client_sending_faster_than_the_app_takes_stops_being_read_and_loses_nothing() -> (
    None
):
    app = Holding()
    with served(app=app) as server:
        sock = _upgraded(server.port)
        hello = b"\x81\x85" + b"\x00\x00\x00\x00" + b"hello"  # masked text, zero key
        sender = _flood(sock, hello * 100_000)
        [session] = await eventually(lambda: list(server.server.sessions))
        await eventually(lambda: not session.transport.is_reading())
        assert session.inbox.qsize() >= MAX_QUEUE  # stopped once the app fell that far behind
        app.go.set()  # the app takes its messages: reading starts again, and all arrive
        await eventually(lambda: app.texts == 100_000, timeout=30)
        assert session.transport.is_reading()
        sender.join(5)
        sock.close()
