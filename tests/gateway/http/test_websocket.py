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
from gateway.http.websocket import handshake_bytes, scope_of
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


async def test_a_client_that_pings_and_never_reads_stops_being_read() -> None:
    # Every ping is answered with a pong; a client that never reads them must not make
    # the server buffer its pongs without bound: reading stops while the buffer is full.
    app = EchoApp()
    with served(app=app) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)  # the handshake's answer, and not a byte more
        assert head.startswith(b"HTTP/1.1 101 ")
        ping = b"\x89\xfd" + b"\x00\x00\x00\x00" + b"p" * 125  # masked (zero key), 125 bytes
        pings = ping * (16 * 1024 * 1024 // len(ping))  # 16 MiB of them

        def flood() -> None:
            with contextlib.suppress(OSError):  # cut off when the test ends
                sock.sendall(pings)

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        [session] = await eventually(lambda: list(server.server.sessions))
        transport = session.transport
        await eventually(lambda: not transport.is_reading())
        # what is buffered is bounded by the buffer's limit and one read's answers
        assert transport.get_write_buffer_size() < 1024 * 1024
        assert sender.is_alive()  # blocked: 16 MiB of pings were not all taken
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(5)
