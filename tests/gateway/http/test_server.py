"""The gateway's HTTP/1.1 protocol on raw sockets: refusals the ASGI scope cannot
express, connection deadlines, and what a hostile client does to a connection
(oversized heads, garbage after a request, Upgrade headers, uploads past the limit).
How one request is answered is in test_cycle.py, the head rules in test_head.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.http.downstream import ClientGone, Request, Responder
from gateway.http.server import CONNECTION_TASK, Server
from gateway.tasks import spawn
from tests.eventually import eventually
from tests.gateway.http.wire import Site, Tap, converse, open_site, read_response, served
from tests.gateway.support import backends, config_text, gateway, raw_request

LIMIT = 65536  # the gateway's default max_header_bytes


@pytest.fixture(scope="module")
def shared_site() -> Iterator[Site]:
    with open_site() as site:
        yield site


@pytest.fixture
def site(shared_site: Site) -> Site:
    shared_site.reset()
    return shared_site


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


async def test_idle_connections_are_closed_after_keep_alive() -> None:
    with served(keep_alive=1) as server:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"GET /one  "), 5)).startswith(
            b"HTTP/1.1 200"
        )
        idle = loop.time()
        try:
            assert await asyncio.wait_for(reader.read(1), 5) == b""  # closed by the server
        finally:
            writer.close()
        # the server's idle clock starts when it wrote the response, a little before this
        # client read it, and its once-a-second sweep closes between 1 and 2 s after that
        assert 0.9 <= loop.time() - idle < 3
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


async def _flood(port: int, prefix: bytes, total: int) -> tuple[Tap, float, int]:
    """Send ``prefix`` then up to ``total`` bytes of one endless head, 64 KiB at a time,
    until the gateway answers or closes; the connection, when the head crossed the
    limit, and how much was sent."""
    loop = asyncio.get_running_loop()
    tap = await Tap.open(port)
    await tap.send(prefix)
    sent, crossed = len(prefix), 0.0
    chunk = b"a" * 65536
    while sent < total and not tap.received and await tap.send(chunk):
        sent += len(chunk)
        if not crossed and sent > LIMIT:
            crossed = loop.time()
    await asyncio.wait([tap.ended], timeout=30)
    await tap.close()
    return tap, crossed, sent


async def _probe(port: int, busy: asyncio.Task[Any]) -> list[float]:
    """Time requests on another connection, one after the other, while ``busy`` runs
    (after one untimed request that opens the connections)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /probe HTTP/1.1\r\nHost: p\r\n\r\n"
    writer.write(request)
    await read_response(reader)
    latencies: list[float] = []
    try:
        while not busy.done() or len(latencies) < 3:
            started = loop.time()
            writer.write(request)
            response = await read_response(reader, 30)
            latencies.append(loop.time() - started)
            assert response.status == 200
    finally:
        writer.close()
    return latencies


@pytest.mark.parametrize(
    "prefix",
    [
        b"GET /",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: ",
    ],
    ids=["request-line", "header-value", "trailer-value"],
)
async def test_an_oversized_head_is_refused_at_the_limit_while_the_worker_serves(
    site: Site, prefix: bytes
) -> None:
    flood = spawn(_flood(site.port, prefix, 50 << 20), name="flood")
    latencies = await _probe(site.port, flood)
    tap, crossed, sent = await flood
    assert tap.received.startswith(b"HTTP/1.1 431 "), bytes(tap.received[:200])
    assert b"connection: close\r\n" in tap.received and b'"error": ' in tap.received
    assert tap.first_byte_at is not None and crossed and tap.ended.done()
    # refused when the limit was crossed (with slack for a loaded machine), not once
    # 50 MB were buffered; meanwhile the worker answered another client in milliseconds
    assert tap.first_byte_at - crossed < 0.2, tap.first_byte_at - crossed
    assert sent < 16 << 20, sent
    assert max(latencies) < 0.05, latencies
    assert site.hits() == len(latencies) + 1


@pytest.mark.parametrize("count", [150, 10_000])
async def test_too_many_headers_get_431(site: Site, count: int) -> None:
    headers = b"".join(b"x%d: 1\r\n" % i for i in range(count))  # 150 fit in 64 KiB
    responses, closed = await converse(
        site.port, b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"
    )
    assert [r.status for r in responses] == [431] and closed
    assert responses[0].json() == {"error": "too many request headers"}
    assert site.hits() == 0


async def test_trailers_are_dropped_not_merged_into_the_headers(site: Site) -> None:
    responses, _ = await converse(
        site.port,
        b"POST /t HTTP/1.1\r\nHost: good.example\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nHost: evil.example\r\nX-Trailer: 1\r\n\r\n",
        timeout=1,
    )
    assert responses[0].status == 200
    echoed = responses[0].json()
    assert echoed["body"] == "abc"
    headers = dict(echoed["headers"])
    assert headers["host"] == "good.example" and headers["x-forwarded-host"] == "good.example"
    assert "x-trailer" not in headers
    # trailers count against the head's limits
    trailers = b"".join(b"t%d: 1\r\n" % i for i in range(150))
    responses, closed = await converse(
        site.port,
        b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + trailers
        + b"\r\n",
    )
    assert [r.status for r in responses] == [431] and closed
    assert len(site.legacy.seen) == 1


async def test_a_malformed_pipelined_request_is_refused_after_the_one_before_is_answered(
    site: Site,
) -> None:
    # the first request takes a while at the backend: its answer still comes first
    responses, closed = await converse(
        site.port, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE /x HTTP/1.1\r\n\r\n"
    )
    assert [r.status for r in responses] == [200, 400] and closed
    assert responses[0].json()["path"] == "/slow"
    assert responses[1].json()["error"].startswith("malformed request")
    assert responses[1].headers[b"connection"] == b"close"
    # two answered, then a refused head (no Host), in order
    responses, closed = await converse(
        site.port,
        b"GET /slow/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /3 HTTP/1.1\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    assert [r.status for r in responses] == [200, 200, 400] and closed
    assert [r.json().get("path") for r in responses[:2]] == ["/slow/1", "/2"]
    assert site.hits() == 3


async def test_a_non_websocket_upgrade_is_served_as_plain_http_with_its_body(site: Site) -> None:
    requests = (
        b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
        b"Content-Length: 3\r\n\r\nabc"
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n"
        b"GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    responses, _ = await converse(site.port, requests, timeout=2)
    assert [r.status for r in responses] == [200, 200, 200, 200]
    seen = [r.json() for r in responses]
    assert [(s["path"], s["body"]) for s in seen] == [
        ("/up", "abc"),
        ("/chunked", "def"),
        ("/h2c", ""),
        ("/after", ""),
    ]
    for echoed in seen:  # the Upgrade and what its Connection header names are dropped
        assert not {name for name, _ in echoed["headers"]} & {"upgrade", "http2-settings"}
    # the body also comes when it arrives after the head
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(
        b"PUT /late HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
        b"Content-Length: 4\r\n\r\n"
    )
    await writer.drain()
    await asyncio.sleep(0)
    writer.write(b"wxyz")
    response = await read_response(reader)
    writer.close()
    assert (response.json()["path"], response.json()["body"]) == ("/late", "wxyz")


async def test_a_refused_upload_is_read_and_dropped_for_a_bounded_time(site: Site) -> None:
    # a client uploading 1 TiB (past the default 100 MB limit) that does not stop at the
    # answer: the gateway drops what it still sends for its linger time (1 s), then hangs
    # up, which resets the connection of a client still writing; the answer came first
    loop = asyncio.get_running_loop()
    tap = await Tap.open(site.port)
    await tap.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (1 << 40))
    deadline, chunk = loop.time() + 30, b"y" * (1 << 20)
    while loop.time() < deadline and await tap.send(chunk):
        pass
    await asyncio.wait_for(asyncio.gather(tap.closed, tap.ended), 10)
    await tap.close()
    assert tap.received.startswith(b"HTTP/1.1 413 "), bytes(tap.received[:200])
    assert b"connection: close\r\n" in tap.received
    assert tap.first_byte_at is not None
    # not reset at once (what the client sent meanwhile was read), nor read to its end
    assert 0.5 < tap.closed.result() - tap.first_byte_at < 10
    assert site.hits() == 0


@pytest.mark.parametrize(
    "prefix",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: ",
    ],
    ids=["header-value", "trailer-value"],
)
async def test_a_client_still_sending_after_a_refusal_is_not_reset_while_the_gateway_lingers(
    prefix: bytes,
) -> None:
    # the trailers are refused while the handler reads the body: its end must not close
    # the connection under the linger either
    with served(max_header_bytes=1024, linger_seconds=10) as server:
        tap = await Tap.open(server.port)
        await tap.send(prefix)
        for _ in range(4096):  # until the 431 comes
            if tap.received:
                break
            assert await tap.send(b"a" * 4096), "reset before the client read the answer"
        # an uploading client goes on writing, past any byte budget: read and dropped
        for _ in range(256):
            assert await tap.send(b"a" * 65536), "reset while the gateway lingers"
        await asyncio.wait_for(asyncio.shield(tap.ended), 10)
        await tap.close()
    assert tap.received.startswith(b"HTTP/1.1 431 "), bytes(tap.received[:200])
    assert not tap.closed.done()


async def test_drain_finishes_requests_in_flight_closes_idle_ones_and_stops_accepting() -> None:
    release = asyncio.Event()

    async def handler(request: Request, io: Responder) -> None:
        if request.path == b"/slow":
            await release.wait()
        await io.respond(200, [], request.path)

    with served(handler) as server:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
        idle_writer.write(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await read_response(idle_reader)).body == b"/first"
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", server.port)
        busy_writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        await eventually(lambda: server.server.tasks)
        drained = asyncio.wrap_future(server.drain(5))
        assert await asyncio.wait_for(idle_reader.read(1), 5) == b""  # idle: closed at once
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            await asyncio.open_connection("127.0.0.1", server.port)
        assert server.loop is not None
        server.loop.call_soon_threadsafe(release.set)
        answer = await read_response(busy_reader)  # in flight: finished, then closed
        assert (answer.status, answer.body) == (200, b"/slow")
        assert answer.headers[b"connection"] == b"close"
        assert await asyncio.wait_for(busy_reader.read(1), 5) == b""
        await asyncio.wait_for(drained, 5)
        idle_writer.close()
        busy_writer.close()


async def test_drain_drops_a_request_task_cancelled_before_its_first_step() -> None:
    # A request's task leaves server.tasks as its coroutine ends; one cancelled before
    # it ever ran never enters its coroutine, so drain must drop it itself instead of
    # waiting on it (a done task: asyncio.wait returns at once) until the grace ends.
    async def handler(request: Request, io: Responder) -> None:
        await io.respond(200, [], b"")

    async def request_task() -> None:
        raise AssertionError("never runs")

    server = Server(handler)
    server.use_loop(asyncio.get_running_loop())
    never = spawn(request_task(), name="request")
    server.tasks.add(never)
    never.cancel()
    await asyncio.wait_for(server.drain(grace=60), 5)
    assert never.cancelled() and not server.tasks
    # and one drain itself cancels at its deadline before it ran leaves the set too
    late = spawn(request_task(), name="request")
    server.tasks.add(late)
    await server.drain(grace=0)
    await eventually(lambda: late.cancelled() and not server.tasks)


async def test_a_handler_waiting_for_a_stalled_body_is_answered_408() -> None:
    gone: list[bool] = []

    async def reader(request: Request, io: Responder) -> None:
        more = True
        try:
            while more:
                _, more = await io.read()
        except ClientGone:
            gone.append(True)
            raise
        await io.respond(200, [], b"read")

    with served(reader, body_timeout=1) as server:
        loop = asyncio.get_running_loop()
        reader_, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
        started = loop.time()
        response = await read_response(reader_)
        assert response.status == 408 and response.headers[b"connection"] == b"close"
        assert 1 <= loop.time() - started < 3.5
        assert await asyncio.wait_for(reader_.read(1), 5) == b""
        writer.close()
    assert gone == [True]


@pytest.mark.parametrize("factory", [False, True], ids=["plain", "task-factory"])
async def test_a_connections_requests_are_answered_in_its_own_task_made_by_the_loops_factory(
    factory: bool,
) -> None:
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[Any]] = []

    def make(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(asyncio.Task(coro, loop=loop, name="made-by-factory", **kwargs))
        return made[-1]

    tasks: dict[bytes, asyncio.Task[Any] | None] = {}

    async def handler(request: Request, io: Responder) -> None:
        tasks[request.path] = asyncio.current_task()
        await io.respond(200, [], b"")

    server = Server(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    loop.set_task_factory(make if factory else None)
    try:
        await server.start(sock)
        one = await asyncio.open_connection(*sock.getsockname())
        two = await asyncio.open_connection(*sock.getsockname())
        one[1].write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        two[1].write(b"GET /other HTTP/1.1\r\nHost: h\r\n\r\n")
        for reader in (one[0], one[0], two[0]):
            assert (await read_response(reader)).status == 200
        one[1].write(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n")  # after an idle moment
        assert (await read_response(one[0])).status == 200
        serving = set(server.tasks)
    finally:
        loop.set_task_factory(None)
        await server.drain(5)
    # pipelined or one after another, a connection's requests share its task
    assert tasks[b"/a"] is tasks[b"/b"] is tasks[b"/c"] is not tasks[b"/other"]
    assert serving == {tasks[b"/a"], tasks[b"/other"]}  # idle, each waits for more
    names = {t.get_name() for t in tasks.values() if t is not None}
    assert names == ({"made-by-factory"} if factory else {CONNECTION_TASK})
    assert all(t in made for t in tasks.values()) if factory else not made
    assert not server.tasks and all(t is not None and t.done() for t in tasks.values())
    for _, writer in (one, two):
        writer.close()
