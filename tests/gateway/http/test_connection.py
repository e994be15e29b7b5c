"""The connection's transport layer: pipelining in order, flow control both ways, owed
refusals; on a recording transport (one module's unit test), then over a real socket."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.http.connection import HIGH_WATER, Connection
from gateway.http.downstream import Request, Responder
from gateway.http.server import Server
from tests.eventually import eventually
from tests.gateway.http.streams import streams
from tests.gateway.http.wire import served


class Recording:
    """A transport that keeps what is written and whether reading is paused."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.closing = False
        self.eof = False
        self.protocol: Any = None
        self.handed_off_at: int | None = None  # len(written) when a WebSocket took over

    def set_protocol(self, protocol: Any) -> None:
        """A WebSocket handshake: the connection is handed to a session."""
        self.protocol = protocol
        self.handed_off_at = len(self.written)

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.protocol.connection_lost(None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str) -> Any:
        return ("192.0.2.7", 4000) if name == "peername" else None


class Gate:
    """A handler that answers each request once the test lets it."""

    def __init__(self) -> None:
        self.started: list[bytes] = []
        self.go: dict[bytes, asyncio.Event] = {}

    async def __call__(self, request: Request, io: Responder) -> None:
        self.started.append(request.path)
        body, more = b"", request.method == "POST"
        while more:
            chunk, more = await io.read()
            body += chunk
        await self.go.setdefault(request.path, asyncio.Event()).wait()
        await io.respond(200, [], request.path + b" " + body[:8])

    def release(self, path: bytes) -> None:
        self.go.setdefault(path, asyncio.Event()).set()


def _open(handler: Any, **options: Any) -> tuple[Connection, Recording, Server]:
    server = Server(handler, **options)
    server.use_loop(asyncio.get_running_loop())
    conn = Connection(server)
    transport = Recording()
    transport.protocol = conn
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, server


async def test_pipelined_requests_wait_their_turn_and_answer_in_order() -> None:
    gate = Gate()
    conn, transport, server = _open(gate)
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    await eventually(lambda: gate.started == [b"/1"])
    assert not transport.reading and conn.busy  # the second waits; nothing more is read
    gate.release(b"/2")
    await asyncio.sleep(0)
    assert gate.started == [b"/1"] and transport.written == b""
    gate.release(b"/1")
    await eventually(lambda: transport.written.count(b"HTTP/1.1 200") == 2)
    assert transport.written.index(b"/1 ") < transport.written.index(b"/2 ")
    assert transport.reading and not conn.busy and conn.idle_since > 0
    assert conn in server.connections


async def test_a_refusal_is_owed_until_the_response_before_it_is_written() -> None:
    gate = Gate()
    conn, transport, _ = _open(gate)
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    await eventually(lambda: gate.started == [b"/1"])
    assert transport.written == b""  # the refusal (no Host) waits for /1's answer
    gate.release(b"/1")
    await eventually(lambda: b"HTTP/1.1 400 " in transport.written)
    assert transport.written.index(b"200 OK") < transport.written.index(b"400 Bad Request")
    assert transport.eof and conn.stopped  # lingering: EOF sent, what comes is dropped
    conn.data_received(b"x" * 100)
    assert not transport.closing


async def test_flow_control_both_ways() -> None:
    gate = Gate()
    conn, transport, _ = _open(gate)
    conn.data_received(
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (3 * HIGH_WATER)
    )
    conn.data_received(b"a" * (HIGH_WATER + 10))  # more than the handler has read
    assert not transport.reading
    await eventually(lambda: transport.reading)  # the handler read it: reading resumes
    conn.data_received(b"b" * (2 * HIGH_WATER - 10))
    conn.pause_writing()  # the client does not read what is written
    assert not transport.reading and conn.write_paused
    gate.release(b"/up")
    await eventually(lambda: conn._drained is not None)  # the response waits for room
    assert transport.written == b""
    conn.resume_writing()
    await eventually(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    assert transport.reading


async def test_a_client_gone_mid_body_stops_the_handler() -> None:
    gate = Gate()
    conn, transport, server = _open(gate)
    conn.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
    await eventually(lambda: gate.started == [b"/up"])
    transport.close()
    await eventually(lambda: not server.tasks)
    assert transport.written == b"" and conn not in server.connections


async def test_a_request_refused_mid_body_lingers_for_a_time_not_a_byte_count() -> None:
    gate = Gate()
    conn, transport, server = _open(gate, max_header_bytes=1024, linger_seconds=0.5)
    conn.data_received(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: "
    )
    await eventually(lambda: gate.started == [b"/up"])
    loop = asyncio.get_running_loop()
    refused_at = loop.time()
    conn.data_received(b"a" * 2048)  # the trailers cross the limit: 431 while the handler reads
    assert transport.written.startswith(b"HTTP/1.1 431 ") and transport.eof
    await eventually(lambda: not server.tasks)  # the handler stopped (ClientGone) ...
    assert not transport.closing  # ... without closing the connection under the linger
    for _ in range(64):  # the client still sending is read and dropped, past any budget
        conn.data_received(b"a" * 65536)
    assert transport.reading and not transport.closing
    await eventually(lambda: transport.closing)  # closed once the linger time is over
    assert loop.time() - refused_at >= 0.45
    assert transport.written.count(b"HTTP/1.1") == 1


async def test_a_large_streamed_response_reaches_a_slow_reader_whole() -> None:
    block = b"z" * 65536

    async def big(request: Request, io: Responder) -> None:
        await io.start(200, [(b"content-length", b"%d" % (len(block) * 200))])
        for _ in range(200):
            await io.write(block)
        await io.end()

    with served(big) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1 << 16)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK")
        # nothing is read: the server's write buffer fills and the handler waits
        await eventually(lambda: any(c.write_paused for c in server.server.connections))
        got = 0
        while got < len(block) * 200:
            got += len(await asyncio.wait_for(reader.read(1 << 20), 5))
        writer.close()
    assert got == len(block) * 200


async def _serve_stream(pieces: list[bytes]) -> tuple[Recording, Connection]:
    async def answer(request: Request, io: Responder) -> None:
        if request.method in ("POST", "PUT"):
            more = True
            while more:
                _, more = await io.read()
        await io.respond(200, [], b"ok")

    conn, transport, server = _open(answer)
    for piece in pieces:
        if transport.closing:
            break
        conn.data_received(piece)
        for _ in range(5):  # let the handlers run between reads
            await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    if server.tasks:  # a body still incomplete: the client goes away
        transport.close()
    await eventually(lambda: not server.tasks)
    return transport, conn


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams, cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=8))
@example(  # a WebSocket handshake hands the connection over (it once crashed this test)
    data=b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nabc",
    cuts=[],
)
def test_no_stream_crashes_a_connection(data: bytes, cuts: list[int]) -> None:
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    pieces = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    transport, conn = asyncio.run(_serve_stream(pieces))
    # what was written parses as whole responses; a refusal, if any, comes last (once a
    # WebSocket handshake took the connection over, the session answers: not checked here)
    written = bytes(transport.written[: transport.handed_off_at])
    found = re.findall(rb"HTTP/1\.1 (\d{3}) ", written)
    statuses = [int(s) for s in found if s != b"100"]  # 100 Continue precedes a final answer
    assert all(s in (200, 400, 431, 501, 505) for s in statuses), statuses
    assert all(s == 200 for s in statuses[:-1]), statuses
    if statuses and statuses[-1] != 200:
        assert transport.eof or transport.closing


async def _idle_after_one_request() -> tuple[Connection, Recording, Server, asyncio.Task[None]]:
    """A connection that has answered one request: its task waits for the next."""
    gate = Gate()
    conn, transport, server = _open(gate)
    gate.release(b"/1")
    gate.release(b"/2")
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    await eventually(lambda: conn.runner is not None and conn._next is not None)
    assert conn.runner is not None and server.tasks == {conn.runner}
    return conn, transport, server, conn.runner


async def test_a_request_arriving_as_the_connections_idle_task_is_cancelled_gets_a_new_task() -> (
    None
):
    conn, transport, server, first = await _idle_after_one_request()
    first.cancel()  # (as a drain's grace ends) and a request comes before it has ended
    conn.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    await eventually(lambda: transport.written.count(b"HTTP/1.1 200") == 2)
    assert first.cancelled() and conn.runner is not None and conn.runner is not first
    assert not transport.closing


async def test_a_connection_closed_while_idle_ends_its_task() -> None:
    conn, transport, server, task = await _idle_after_one_request()
    transport.close()
    await eventually(lambda: not server.tasks)
    assert task.done() and not task.cancelled() and conn.runner is None


async def test_a_websocket_handshake_after_a_request_ends_the_connections_task() -> None:
    conn, transport, server, task = await _idle_after_one_request()
    conn.data_received(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert transport.handed_off_at is not None  # the session has the connection now
    await eventually(lambda: not server.tasks)  # its close never reaches the connection
    assert task.done() and conn.runner is None


# A keep-alive response is written at the loop's next turn (gateway.http.batch); whatever
# is written to or closes the connection before then comes after it.


async def test_a_held_response_goes_out_before_the_websocket_handshake_behind_it() -> None:
    gate = Gate()
    gate.release(b"/1")
    conn, transport, _ = _open(gate)
    conn.data_received(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await eventually(lambda: transport.handed_off_at is not None)
    assert transport.written.startswith(b"HTTP/1.1 200 OK")
    assert transport.handed_off_at == transport.written.index(b"/1 ") + len(b"/1 ")


async def test_a_held_response_goes_out_before_a_handler_failing_after_it_closes() -> None:
    async def answers_then_fails(request: Request, io: Responder) -> None:
        await io.respond(200, [], b"answered")
        raise RuntimeError("after the response")

    conn, transport, _ = _open(answers_then_fails)
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    await eventually(lambda: transport.closing)
    assert transport.written.startswith(b"HTTP/1.1 200 OK")
    assert transport.written.endswith(b"answered")


async def test_a_drain_and_the_idle_sweep_write_what_is_held_before_they_close() -> None:
    conn, transport, server = _open(Gate())
    server.batch.write(transport, b"held")
    await server.drain(grace=1)
    assert transport.closing and transport.written == b"held"
    conn, transport, server = _open(Gate(), keep_alive=0.5)
    conn.idle_since -= 1  # idle past keep-alive
    server.batch.write(transport, b"held")
    server._sweep()
    assert transport.closing and transport.written == b"held"


async def test_a_keep_alive_response_is_held_to_the_next_turn_and_a_closing_one_is_not() -> None:
    seen: list[int] = []
    transport: Recording

    async def respond(request: Request, io: Responder) -> None:
        await io.respond(200, [], b"ok")
        seen.append(len(transport.written))  # what the transport had when respond returned

    conn, transport, _ = _open(respond)
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    await eventually(lambda: transport.written.endswith(b"ok"))
    conn, transport, _ = _open(respond)
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    await eventually(lambda: transport.written.endswith(b"ok"))
    assert seen == [0, len(transport.written)]


class Filling(Recording):
    """A transport whose buffer fills with any write over 64 KiB."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(data) > 65536:
            self.protocol.pause_writing()


async def pipelined_behind_a_full_response(app: Any = None) -> Filling:
    """A WebSocket handshake pipelined behind a response that fills the client's buffer,
    once the connection was handed over: its transport."""

    async def large(request: Request, io: Responder) -> None:
        await io.respond(200, [], b"x" * 100_000)

    server = Server(large, app)
    server.use_loop(asyncio.get_running_loop())
    conn = Connection(server)
    transport = Filling()
    transport.protocol = conn
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await eventually(lambda: transport.handed_off_at is not None)
    return transport


async def handed_over_while_full(accepted: list[bool]) -> tuple[Filling, Any]:
    """The same hand-over to a session whose app accepts: the transport and the session,
    its app's accept due."""

    async def accepting(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        accepted.append(True)
        await receive()  # until the client goes

    transport = await pipelined_behind_a_full_response(accepting)
    session = transport.protocol
    await eventually(lambda: session._task is not None and session.inbox.empty())
    for _ in range(5):  # the app's accept is due: it waits for the buffer to drain
        await asyncio.sleep(0)
    return transport, session


async def test_a_websocket_session_waits_to_write_while_the_earlier_response_fills_the_buffer() -> (
    None
):
    accepted: list[bool] = []
    transport, session = await handed_over_while_full(accepted)
    assert len(transport.written) == transport.handed_off_at and not accepted
    session.resume_writing()
    await eventually(lambda: b"101 Switching Protocols" in transport.written)
    assert accepted
    transport.close()


async def test_a_websocket_session_handed_a_full_buffer_reads_once_it_drains() -> None:
    accepted: list[bool] = []
    transport, session = await handed_over_while_full(accepted)
    # handed over after the whole response before the handshake
    assert transport.handed_off_at == transport.written.index(b"\r\n\r\n") + 4 + 100_000
    assert not transport.reading  # the client reads nothing: nothing more is read from it
    session.resume_writing()
    assert transport.reading  # the session's frames are read
    await eventually(lambda: accepted == [True])
    transport.close()


async def test_a_websocket_session_closed_while_its_buffer_is_full_lets_a_waiting_send_end() -> (
    None
):
    # A drain closes the session; the transport waits for its full buffer to empty, so
    # neither resume_writing nor connection_lost comes while the client does not read.
    accepted: list[bool] = []
    transport, session = await handed_over_while_full(accepted)
    transport.closing = True  # closing, its buffer not yet written
    session.close()
    await eventually(lambda: accepted == [True])  # the send returned, writing nothing
    assert len(transport.written) == transport.handed_off_at
    session.connection_lost(None)
