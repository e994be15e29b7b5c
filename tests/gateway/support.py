"""Helpers for gateway tests: real backend apps, a gateway on a real socket (in-process or
as a ``strangler run`` process), and a fast load client on the gateway's own transport."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.config import parse
from gateway.http.lifespan import Lifespan
from gateway.http.server import Server
from gateway.http.upstream import PooledTransport, UpstreamRequest
from gateway.proxy.proxy import Proxy
from gateway.runtime.wiring import build_proxy, count_refusals
from gateway.runtime.worker import loop_factory
from tests.eventually import GiveUp, wait_until
from tests.harness import ServiceError, UvicornThread, free_port, wait_for_port

Scope = dict[str, Any]


def backend_app(name: str) -> Any:
    """A backend that says who it is and echoes what it got.

    ``/status/N`` answers N; ``/slow/MS`` waits; ``/bytes/N`` streams N bytes;
    ``/upload`` returns the size and sha256 of the body; a WebSocket echoes.
    Every other path returns the request as JSON.
    """
    state: dict[str, int] = {"flaky": 0}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "subprotocol": None})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "?headers":  # what the handshake carried
                    seen = [[k.decode(), v.decode("latin-1")] for k, v in scope["headers"]]
                    await send({"type": "websocket.send", "text": json.dumps(seen)})
                elif message.get("text") is not None:
                    await send({"type": "websocket.send", "text": f"{name}:{message['text']}"})
                else:
                    await send({"type": "websocket.send", "bytes": message["bytes"]})
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        size = 0
        digest = hashlib.sha256()
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            digest.update(chunk)
            if not message.get("more_body"):
                break
        status = 200
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        if path.startswith("/flaky/"):  # fails N times, then answers
            fails = int(path.rsplit("/", 1)[1])
            state["flaky"] += 1
            if state["flaky"] <= fails:
                status = 503
        if path.startswith("/slow/"):
            await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
        if path.startswith("/bytes/"):
            total = int(path.rsplit("/", 1)[1])
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(total).encode())],
                }
            )
            block = b"x" * 65536
            sent = 0
            while sent < total:
                piece = block[: min(len(block), total - sent)]
                sent += len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": sent < total})
            return
        body = json.dumps(
            {
                "backend": name,
                "method": scope["method"],
                "path": path,
                "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                "query": scope.get("query_string", b"").decode(),
                "headers": [[k.decode(), v.decode("latin-1")] for k, v in scope["headers"]],
                "size": size,
                "sha256": digest.hexdigest(),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"x-hop"),
                    (b"x-hop", b"secret"),
                    (b"keep-alive", b"timeout=5"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def backends(*names: str) -> Iterator[dict[str, UvicornThread]]:
    servers = {n: UvicornThread(backend_app(n)) for n in names}
    for server in servers.values():
        server.__enter__()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


def config_text(urls: dict[str, str], routes: str, extra: str = "") -> str:
    lines = ["version: 1", "backends:"]
    for name, url in urls.items():
        legacy = ", legacy: true" if name == "legacy" else ""
        lines.append(f'  {name}: {{url: "{url}"{legacy}}}')
    return "\n".join(lines) + "\nroutes:\n" + routes + "\n" + extra


class ServerThread:
    """The gateway's own HTTP/1.1 server (gateway.http.server) on a free loopback port, in
    a background thread with its own event loop (uvloop, as a worker runs); ``lifespan``
    is an ASGI app whose lifespan is run around it."""

    def __init__(self, server: Server, lifespan: Any = None) -> None:
        self.server = server
        self.lifespan = lifespan
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        lifespan = Lifespan(self.lifespan) if self.lifespan is not None else None
        if lifespan is not None:
            await lifespan.startup()
        await self.server.start(self.sock)
        self._started.set()
        await self._stop.wait()
        await self.server.drain(5)
        if lifespan is not None:
            await lifespan.shutdown()

    def drain(self, grace: float = 5.0) -> concurrent.futures.Future[None]:
        """Drain the server (as SIGTERM does in a worker), from the test's thread."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self.server.drain(grace), self.loop)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        if not self._started.wait(10):
            raise ServiceError("the gateway's server did not start within 10s")
        return self

    def __exit__(self, *exc: object) -> None:
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self.thread.join(10)
        self.sock.close()


@contextmanager
def gateway(text: str) -> Iterator[tuple[ServerThread, Proxy]]:
    """The proxy served in-process by the gateway's own server."""
    config = parse(text)
    proxy = build_proxy(config)
    server = Server(
        proxy.handle,
        proxy,
        max_header_bytes=config.proxy.max_header_bytes,
        head_timeout=config.proxy.client_timeout,
        body_timeout=config.proxy.client_timeout,
        keep_alive=max(config.proxy.client_timeout, 1.0),
        on_refused=count_refusals(proxy.metrics),
    )
    with ServerThread(server, lifespan=proxy) as thread:
        yield thread, proxy


@dataclass
class RunningGateway:
    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def metrics(self) -> str:
        return httpx.get(f"{self.admin_url}/metrics").text


@contextmanager
def strangler_run(
    tmp: Path,
    routes_yaml: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
    token: str | None = None,
) -> Iterator[RunningGateway]:
    """``strangler run`` as a real process, listening on free ports."""
    port, admin_port = free_port(), free_port()
    path = tmp / "routes.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\nadmin: {{listen: 127.0.0.1:{admin_port}}}\n" + routes_yaml
        if "admin:" not in routes_yaml
        else f"listen: 127.0.0.1:{port}\n" + routes_yaml.replace("ADMIN_PORT", str(admin_port))
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(path), "--workers", str(workers)],
        env={**os.environ, **(env or {})},
    )
    running = RunningGateway(proc, port, admin_port, path)
    try:
        wait_for_port("127.0.0.1", admin_port, 20, proc)
        auth = {"authorization": f"Bearer {token}"} if token else {}

        def ready() -> bool:
            if proc.poll() is not None:
                raise GiveUp(f"strangler run exited with {proc.returncode} before it was ready")
            return httpx.get(f"{running.admin_url}/readyz", headers=auth).status_code == 200

        wait_until(ready, timeout=20, interval=0.1, message="strangler run's /readyz to say 200")
        yield running
    finally:
        failing = sys.exc_info()[0] is not None  # keep a test's own failure
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            # A gateway that does not stop on SIGTERM is a bug, not something to wait out.
            if not failing:
                raise AssertionError("strangler run did not stop within 20 s of SIGTERM") from None


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def fire(
    port: int,
    requests: list[tuple[str, str, list[tuple[bytes, bytes]]]],
    concurrency: int = 16,
    transport: PooledTransport | None = None,
) -> list[Reply]:
    """Send (method, target, headers) requests to 127.0.0.1:port, ``concurrency`` at a time."""
    own = transport is None
    client = transport or PooledTransport()
    replies: list[Reply | None] = [None] * len(requests)
    queue = iter(enumerate(requests))

    async def one(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> Reply:
        request = UpstreamRequest(
            method.encode(),
            target.encode(),
            [(b"host", b"gateway"), *headers],
            head=method == "HEAD",
        )
        response = await client.send("127.0.0.1", port, request, 5.0, 30.0, concurrency)
        body = b"".join([c async for c in response.chunks()])
        return Reply(response.status, dict(response.headers), body)

    async def worker() -> None:
        for i, (method, target, headers) in queue:
            replies[i] = await one(method, target, headers)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if own:
            await client.aclose()
    return [r for r in replies if r is not None]


async def byte_stream(total: int, block: int = 1 << 20) -> AsyncIterator[bytes]:
    sent = 0
    piece = b"y" * block
    while sent < total:
        chunk = piece[: min(block, total - sent)]
        sent += len(chunk)
        yield chunk


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (KiB)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


async def raw_request(port: int, data: bytes) -> bytes:
    """Send raw bytes to the gateway and return what it answers (up to 64 KiB)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


@contextmanager
def monolith(tmp: Path) -> Iterator[UvicornThread]:
    """The example legacy monolith on its own SQLite file, on a real socket."""
    from examples.legacy_monolith.app import create_app

    with UvicornThread(create_app(str(tmp / "legacy.db")), lifespan="on") as server:
        yield server


async def write_orders(
    port: int, orders: int, updates: int, clients: int = 10
) -> list[tuple[int, list[int]]]:
    """Create ``orders`` orders through the gateway, each updated ``updates`` times in
    sequence (quantity 1..updates); ``clients`` orders at a time.  Returns, per order, its id
    and the quantities written, in order.  Failed requests raise."""
    transport = PooledTransport()
    results: list[tuple[int, list[int]]] = []
    queue = iter(range(orders))

    async def call(method: bytes, target: bytes, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        request = UpstreamRequest(
            method, target, [(b"host", b"gw"), (b"content-type", b"application/json")], body
        )
        response = await transport.send("127.0.0.1", port, request, 5, 30, clients)
        data = b"".join([c async for c in response.chunks()])
        if response.status >= 300:
            raise AssertionError(f"{method.decode()} {target.decode()}: {response.status} {data!r}")
        result: dict[str, Any] = json.loads(data)
        return result

    async def client() -> None:
        for n in queue:
            created = await call(
                b"POST", b"/api/orders", {"customer": f"c{n}", "item": "book", "quantity": 0}
            )
            written = []
            for q in range(1, updates + 1):
                await call(b"PATCH", b"/api/orders/%d" % created["id"], {"quantity": q})
                written.append(q)
            results.append((created["id"], written))

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await transport.aclose()
    return results


def capture_routes(
    legacy: str,
    outbox_url: str,
    spool: Path,
    topic: str = "events.{aggregate}",
    bootstrap: str = "127.0.0.1:9092",
) -> str:
    """A routes.yaml capturing the monolith's order writes into ``outbox_url``."""
    return f"""\
version: 1
backends:
  legacy: {{url: "{legacy}", legacy: true}}
routes:
  - name: orders
    match: {{prefix: /api/orders}}
    split: {{legacy: 100}}
    capture:
      - {{method: POST, path: /api/orders, event: OrderCreated, aggregate: order,
          id: "response:/id"}}
      - {{method: PATCH, path: "/api/orders/{{id}}", event: OrderUpdated, aggregate: order,
          id: "path:id", id_type: integer}}
      - {{method: DELETE, path: "/api/orders/{{id}}", event: OrderDeleted, aggregate: order,
          id: "path:id", id_type: integer, payload: none}}
  - name: default
    split: {{legacy: 100}}
outbox: {{url: "{outbox_url}", spool: "{spool}"}}
kafka: {{bootstrap: "{bootstrap}", topic: "{topic}"}}
"""
