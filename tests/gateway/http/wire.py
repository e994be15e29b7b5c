"""Test support for the gateway's HTTP/1.1 server on the wire: backends that record what
reaches them, a gateway in front of two of them, and raw-socket clients that read
exactly what the gateway writes."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gateway.http.downstream import Request, Responder
from gateway.http.server import Server
from gateway.tasks import spawn
from tests.gateway.support import ServerThread, config_text, gateway
from tests.harness import UvicornThread

ROUTES = (
    "  - {name: api, match: {prefix: /api/users}, split: {api: 1}}\n"
    "  - {name: orders, match: {prefix: /api/orders}, split: {legacy: 1},\n"
    "     capture: [{method: POST, path: /api/orders, event: OrderCreated, aggregate: order,"
    " id: 'response:/id'}]}\n"
    "  - {name: default, split: {legacy: 1}}"
)


@dataclass
class Recording:
    """An ASGI backend that records each request it gets and echoes it back as JSON
    (a path containing ``slow`` is answered after 0.3 s)."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if "slow" in scope["path"]:
            await asyncio.sleep(0.3)
        seen = {
            "method": scope["method"],
            "path": scope["raw_path"].decode("latin-1"),
            "headers": [[k.decode(), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        self.seen.append(seen)
        payload = json.dumps(seen).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(payload)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@dataclass
class Site:
    """A gateway (``port``) routing ``/api/users`` to ``api``, ``/api/orders`` (whose
    POSTs are captured) and everything else to ``legacy``."""

    port: int
    legacy: Recording
    api: Recording

    def hits(self) -> int:
        """Requests the backends got since :meth:`reset`."""
        return len(self.legacy.seen) + len(self.api.seen)

    def reset(self) -> None:
        self.legacy.seen.clear()
        self.api.seen.clear()


@contextmanager
def open_site() -> Iterator[Site]:
    legacy, api = Recording(), Recording()
    with UvicornThread(legacy) as one, UvicornThread(api) as two:
        text = config_text({"legacy": one.url, "api": two.url}, ROUTES)
        with gateway(text) as (gw, _):
            yield Site(gw.port, legacy, api)


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader, timeout: float = 5) -> Response:
    """One response framed by Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return Response(status, headers, body)


async def converse(port: int, data: bytes, timeout: float = 5) -> tuple[list[Response], bool]:
    """Send ``data`` at once; the responses read until the gateway closes (or
    ``timeout`` passes), and whether it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    responses: list[Response] = []
    try:
        while True:
            responses.append(await read_response(reader, timeout))
    except (asyncio.IncompleteReadError, ConnectionError):
        return responses, True
    except TimeoutError:
        return responses, False
    finally:
        writer.close()


def statuses(raw: bytes) -> list[int]:
    """The statuses of the responses in a byte stream."""
    return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


class Tap:
    """A raw client connection that sends while it keeps every byte the gateway sends
    (and when the first came), and keeps sending after the gateway's EOF, as an
    uploading client does.  A plain socket, so that a reset while sending does not drop
    what had already arrived (an asyncio transport stops reading on a failed write).

    ``ended`` resolves when the reader has seen the gateway's EOF or reset, so that all
    the gateway sent before is in ``received`` (a reset seen by a write leaves what
    arrived before it readable: the reader, not the writer, says when the stream ended);
    ``closed`` resolves when the gateway resets the connection (a write after the
    gateway closed its side is reset)."""

    def __init__(self, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.received = bytearray()
        self.first_byte_at: float | None = None
        self.ended: asyncio.Future[float] = self.loop.create_future()
        self.closed: asyncio.Future[float] = self.loop.create_future()
        self._reader = spawn(self._read(), name="tap-reader")

    @classmethod
    async def open(cls, port: int) -> Tap:
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    def _end(self, *futures: asyncio.Future[float]) -> None:
        for future in futures:
            if not future.done():
                future.set_result(self.loop.time())

    async def _read(self) -> None:
        while True:
            try:
                data = await self.loop.sock_recv(self.sock, 65536)
            except OSError:
                self._end(self.ended, self.closed)
                return
            if not data:
                self._end(self.ended)
                return
            if self.first_byte_at is None:
                self.first_byte_at = self.loop.time()
            self.received += data

    async def send(self, data: bytes) -> bool:
        """Write ``data`` (yielding to the loop); False once the connection is reset."""
        if self.closed.done():
            return False
        try:
            await self.loop.sock_sendall(self.sock, data)
        except OSError:
            self._end(self.closed)  # the reader reads what arrived before, then ends
            return False
        await asyncio.sleep(0)
        return True

    async def close(self) -> None:
        """Stop reading, then close the socket (once the loop no longer watches it)."""
        self._reader.cancel()
        await asyncio.wait([self._reader])
        self.sock.close()


async def echo(request: Request, io: Responder) -> None:
    """A handler that answers in the ways the proxy does, chosen by path (``/status/N``
    answers N)."""
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
    elif request.path.startswith(b"/status/"):
        await io.respond(int(request.path[8:]), [], b"status")
    else:
        text = b"%b %b %b %b" % (request.method.encode(), request.path, request.query, body)
        await io.respond(200, [(b"x-client", request.client.encode())], text)


@contextmanager
def served(handler: Any = echo, **options: Any) -> Iterator[ServerThread]:
    """The gateway's server serving ``handler`` alone, on a real socket (``options`` are
    :class:`~gateway.http.server.Server`'s)."""
    with ServerThread(Server(handler, **options)) as server:
        yield server


async def exchange(port: int, data: bytes, until: bytes, count: int = 1) -> bytes:
    """Send ``data``; what comes back until ``until`` was seen ``count`` times (or the
    connection closed)."""
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
