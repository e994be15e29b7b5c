#!/usr/bin/env python3
"""The floor under any Python proxy on this machine: a bare forwarder, for reference.

    python bench/floor.py PORT UPSTREAM_PORT [WORKERS] [task|callback]

It forwards every request to ``127.0.0.1:UPSTREAM_PORT`` over pooled keep-alive
connections, with uvloop and httptools, and nothing else: no routing, no header
policy, no limits, no metrics, no error handling beyond dropping a broken connection.
It is not a proxy anyone should run; ``bench/run.py`` measures it beside the gateway so
that the gateway's figures can be read against what the runtime itself costs:

* ``task``: one asyncio task per request, waiting on a future for the backend's
  answer (the gateway runs a task per connection, which waits on a future for each
  request and on another for the backend's answer);
* ``callback``: no task and no future, the answer written from the backend
  connection's own callback: the least a Python event loop can do per request.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import cast

import httptools
import uvloop

DROPPED = frozenset({b"connection", b"keep-alive", b"content-length", b"transfer-encoding"})


class Backend(asyncio.Protocol):
    """One pooled connection to the upstream, carrying one exchange at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None  # callback mode: who gets the answer
        self.answered: asyncio.Future[bytes] | None = None  # task mode
        self.headers: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        if self.client is not None and self.client.transport is not None:
            self.client.transport.close()
        answered, self.answered = self.answered, None
        if answered is not None and not answered.done():
            answered.set_exception(ConnectionError("upstream closed"))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in DROPPED:
            self.headers.append(b"%b: %b\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status = self.parser.get_status_code()
        head = b"HTTP/1.1 %d \r\n%bcontent-length: %d\r\n\r\n" % (
            status,
            b"".join(self.headers),
            len(body),
        )
        client, self.client = self.client, None
        answered, self.answered = self.answered, None
        self.pool.idle.append(self)  # free for the next request before this one goes on
        if client is not None and client.transport is not None:
            client.transport.write(head + body)
        elif answered is not None:
            answered.set_result(head + body)


class Pool:
    def __init__(self, loop: asyncio.AbstractEventLoop, port: int) -> None:
        self.loop = loop
        self.port = port
        self.idle: list[Backend] = []

    async def take(self) -> Backend:
        if self.idle:
            return self.idle.pop()  # the most recently used
        loop, port = self.loop, self.port
        _, backend = await loop.create_connection(lambda: Backend(self), "127.0.0.1", port)
        return backend


class Client(asyncio.Protocol):
    def __init__(self, pool: Pool, task_mode: bool) -> None:
        self.pool = pool
        self.task_mode = task_mode
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in DROPPED:
            self.headers.append(b"%b: %b\r\n" % (name, value))

    def on_message_complete(self) -> None:
        request = b"%b %b HTTP/1.1\r\n%bx-forwarded-for: 127.0.0.1\r\n\r\n" % (
            self.parser.get_method(),
            self.url,
            b"".join(self.headers),
        )
        idle = self.pool.idle
        if self.task_mode or not idle:
            self.pool.loop.create_task(self.forward(request))
        else:  # callback mode with a pooled connection: no task, no future
            backend = idle.pop()
            backend.client = self
            assert backend.transport is not None
            backend.transport.write(request)

    async def forward(self, request: bytes) -> None:
        try:
            backend = await self.pool.take()
            if backend.transport is None:
                raise ConnectionError("upstream closed")
            if not self.task_mode:
                backend.client = self
                backend.transport.write(request)
                return
            answered = backend.answered = self.pool.loop.create_future()
            backend.transport.write(request)
            answer = await answered
        except OSError:  # no answer will come: the client must not wait for one
            if self.transport is not None:
                self.transport.close()
            return
        if self.transport is not None:
            self.transport.write(answer)


async def serve(sock: socket.socket, upstream: int, task_mode: bool) -> None:
    loop = asyncio.get_running_loop()
    pool = Pool(loop, upstream)
    server = await loop.create_server(lambda: Client(pool, task_mode), sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> int:
    port, upstream = int(sys.argv[1]), int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    task_mode = (sys.argv[4] if len(sys.argv) > 4 else "task") == "task"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    uvloop.run(serve(sock, upstream, task_mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
