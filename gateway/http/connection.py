"""One client connection to the proxy listener: the thin transport layer around
:class:`~gateway.http.framing.RequestFramer`.

It makes a :class:`~gateway.http.cycle.NativeCycle` per framed request, which its task
(one per connection, made by the server for the first request) answers with the handler;
requests pipelined behind one still being answered wait their turn (reading pauses
meanwhile), so that responses leave in order.  Flow control: reading
pauses while a request body waits unread past :data:`HIGH_WATER`, while a pipelined
request waits, and while the transport's write buffer is over its high mark
(``pause_writing``); responses wait for ``resume_writing`` before writing more.

A refusal is written after the responses still owed for the requests pipelined before it
(never in their place), then the connection is closed.  A response that ends the
connection while the client may still be sending closes it after a lingering close
(:meth:`Connection.linger`): EOF is sent, and what the client still sends is read and
dropped for a bounded time, not a number of bytes, as nginx's lingering close and
Envoy's delayed close do, so that closing with the client's data unread does not reset
the connection while the client is still writing, and the answer with it.

Idle and head deadlines are not timers per connection: the server's sweep
(:mod:`gateway.http.server`) reads :attr:`Connection.idle_since` and
:attr:`Connection.head_at` once a second.  State is kept in slots; an idle connection
holds no cycle and no buffer, and its task waits on one future for the next request.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol, cast

from gateway.http.batch import WriteBatch
from gateway.http.cycle import NativeCycle
from gateway.http.downstream import Request
from gateway.http.framing import Head, Limits, RequestFramer
from gateway.http.head import refusal_response
from gateway.http.llhttp import Llhttp

#: request body bytes buffered, unread by the handler, before reading pauses
HIGH_WATER: Final = 65536


class Server(Protocol):
    """What a connection needs from its server (:class:`gateway.http.server.Server`)."""

    loop: asyncio.AbstractEventLoop
    batch: WriteBatch
    limits: Limits
    scheme: str
    linger_seconds: float
    draining: bool
    connections: set[Connection]

    def on_refused(self, status: int) -> None: ...

    def run(self, conn: Connection, cycle: NativeCycle) -> None: ...

    def upgrade(
        self, transport: asyncio.Transport, request: Request, rest: bytes, write_paused: bool
    ) -> None: ...


class Connection(RequestFramer):
    __slots__ = (
        "_active",
        "_cycle",
        "_drained",
        "_lingering",
        "_next",
        "_handoff",
        "_owed_upgrade",
        "_read_paused",
        "_refusal",
        "_waiting",
        "_write_paused",
        "batch",
        "head_at",
        "idle_since",
        "runner",
        "server",
        "transport",
    )

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server
        self.batch = server.batch  # responses written at the loop's next turn
        self.limits = server.limits
        self.scheme = server.scheme
        self.peer = "0.0.0.0"
        self.head_at = 0.0  # loop time a pending request head began; 0 when none
        self.idle_since = 0.0  # loop time the connection fell idle; 0 while busy
        self._active: NativeCycle | None = None  # the request being answered
        self._cycle: NativeCycle | None = None  # the latest request framed (its body comes)
        self._waiting: list[NativeCycle] | None = None  # pipelined, not yet started
        self._refusal: bytes | None = None  # owed once the responses before it are written
        self._lingering = False  # EOF sent: what the client sends is read and dropped
        self._read_paused = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._owed_upgrade: tuple[Head, bytes] | None = None  # a WebSocket handshake owed
        # The task answering this connection's requests one after another (made by the
        # server for the first), what it waits on for the next, and one started while
        # it was still finishing the one before
        self.runner: asyncio.Task[None] | None = None
        self._next: asyncio.Future[NativeCycle | None] | None = None
        self._handoff: NativeCycle | None = None

    # asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is not one
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = peer[0]
        self.tokenizer = Llhttp(self)
        self.idle_since = self.server.loop.time()
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.stopped:
            self.feed(data)
        elif not self._lingering:  # parsing stopped (a tunnel, an owed upgrade): not read
            self._pause()
        # lingering: what the client still sends is dropped

    def eof_received(self) -> bool | None:
        self.batch.flush()  # a response already made goes out before the close
        return None  # the client is done: close (a request in flight is abandoned)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.stopped = True
        del self.tokenizer  # it holds this object's callbacks: no cycle left for the collector
        for cycle in (self._active, self._cycle, *(self._waiting or ())):
            if cycle is not None:
                cycle.disconnected = True
                cycle.wake()
        self._release_writer()
        self.no_next_request()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_writer()
        if self._reading_wanted():
            self._resume()

    # What the framer found --------------------------------------------------------
    def head_begun(self) -> None:
        self.head_at = self.server.loop.time()
        self.idle_since = 0.0

    def request_received(self, head: Head) -> None:
        self.head_at = 0.0
        cycle = self._cycle = NativeCycle(self, head)
        if self._active is None:
            self._start(cycle)
        else:  # pipelined: waits its turn, and nothing more is read meanwhile
            self._pause()
            if self._waiting is None:
                self._waiting = [cycle]
            else:
                self._waiting.append(cycle)

    def body_received(self, chunk: bytes) -> None:
        cycle = self._cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.body += chunk
        if len(cycle.body) > HIGH_WATER:
            self._pause()
        cycle.wake()

    def request_complete(self) -> None:
        cycle = self._cycle
        if cycle is not None and not cycle.response_complete:
            cycle.more_body = False
            cycle.wake()

    def upgraded(self, head: Head, rest: bytes) -> None:
        if self.busy:  # pipelined behind requests still owed answers: after them
            self._owed_upgrade = (head, rest)
            self._pause()
            return
        self.server.connections.discard(self)
        self.no_next_request()  # the session answers from now on
        # The responses before the handshake's go first; writing them may pause reading
        # (a full buffer).  That pause is this connection's and ends here: the session,
        # told whether the buffer is full, pauses reading itself until it drains.
        self.batch.flush()
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        self.server.upgrade(self.transport, head.request, rest, self._write_paused)

    def refused(self, status: int, reason: str, in_body: bool) -> None:
        """Answer with ``status`` a request that must not be served, once the responses
        owed for the requests before it are written."""
        self.server.on_refused(status)
        self.head_at = self.idle_since = 0.0
        answer = refusal_response(status, reason)
        cycle = self._cycle
        if in_body and cycle is not None and not cycle.response_complete:
            # The latest request's body is what cannot be parsed.
            if self._waiting and cycle in self._waiting:
                self._waiting.remove(cycle)  # never started: refused in its turn
            else:
                cycle.disconnected = True  # its handler stops at its next read or write
                cycle.wake()
                if cycle.response_started:  # too late to answer it
                    self.batch.flush()
                    self.transport.close()
                else:
                    self._send_refusal(answer)
                return
        active = self._active
        if self._waiting or (active is not None and not active.response_complete):
            self._refusal = answer
            self._pause()
        else:
            self._send_refusal(answer)

    # What a cycle needs -------------------------------------------------------
    @property
    def write_paused(self) -> bool:
        return self._write_paused

    @property
    def draining(self) -> bool:
        return self.server.draining

    async def writable(self) -> None:
        if not self._write_paused or self.transport.is_closing():
            return
        if self._drained is None:
            self._drained = self.server.loop.create_future()
        await self._drained

    def body_wanted(self) -> None:
        if self._reading_wanted():
            self._resume()

    def response_complete(self, cycle: NativeCycle) -> None:
        """``cycle``'s response is written: start the next request, or fall idle."""
        if self._cycle is cycle:
            self._cycle = None
        self._active = None
        if not cycle.keep_alive:
            self._end()
            return
        if self.transport.is_closing():
            return
        if self._waiting:
            following = self._waiting.pop(0)
            if not self._waiting:
                self._waiting = None
            self._start(following)
            if self._reading_wanted():
                self._resume()
        elif self._refusal is not None:
            answer, self._refusal = self._refusal, None
            self._send_refusal(answer)
        elif self._owed_upgrade is not None:
            (head, rest), self._owed_upgrade = self._owed_upgrade, None
            self.upgraded(head, rest)
        elif self.server.draining and not self.in_head:
            self.batch.flush()
            self.transport.close()
        elif not self.stopped:
            if not self.in_head:
                self.idle_since = self.server.loop.time()
            if self._reading_wanted():
                self._resume()

    def body_overdue(self, now: float, timeout: float) -> bool:
        """Whether the handler has waited for the request body longer than ``timeout``;
        if so, the request is answered 408 (when still possible) and the connection ends."""
        cycle = self._active
        if cycle is None or not cycle.waiting_since or now - cycle.waiting_since <= timeout:
            return False
        self.server.on_refused(408)
        cycle.disconnected = True  # the handler's read ends
        cycle.wake()
        if cycle.response_started:
            self.batch.flush()
            self.transport.close()
        else:
            self._send_refusal(refusal_response(408, "request body not received in time"))
        return True

    # ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A request is being answered or waits to be."""
        return self._active is not None or bool(self._waiting)

    async def next_request(self) -> NativeCycle | None:
        """For the connection's task, once it has answered a request: the next one to
        answer, when it starts; None when no more will (the connection ends)."""
        cycle, self._handoff = self._handoff, None
        if cycle is not None or self.stopped or self.transport.is_closing():
            return cycle
        waiter = self._next = self.server.loop.create_future()
        try:
            following: NativeCycle | None = await waiter
            return following
        finally:
            if self._next is waiter:
                self._next = None

    def runner_ended(self) -> None:
        """The connection's task no longer answers requests (it ended, or was cancelled):
        one started for it that it did not take gets a task of its own."""
        self.runner = None
        cycle, self._handoff = self._handoff, None
        if cycle is not None and not self.transport.is_closing():
            self.server.run(self, cycle)

    def _start(self, cycle: NativeCycle) -> None:
        self._active = cycle
        self.idle_since = 0.0
        waiter, self._next = self._next, None
        if waiter is not None and not waiter.done():
            waiter.set_result(cycle)  # the connection's task waits for it
        elif self.runner is None or self.runner.done():
            self.server.run(self, cycle)
        else:  # the task is finishing the request before: it takes this one next
            self._handoff = cycle

    def no_next_request(self) -> None:
        """The connection's task, waiting for a next request, ends (none will come)."""
        waiter, self._next = self._next, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _reading_wanted(self) -> bool:
        if self._write_paused or self._waiting or (self.stopped and not self._lingering):
            return False
        cycle = self._cycle
        return cycle is None or len(cycle.body) <= HIGH_WATER

    def _pause(self) -> None:
        if not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._read_paused and not self.transport.is_closing():
            self._read_paused = False
            self.transport.resume_reading()

    def _release_writer(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _end(self) -> None:
        """Close after a response that ends the connection; if the client may still be
        sending its request, linger first."""
        if self.message_complete:
            self.batch.flush()
            self.transport.close()
        else:
            self.linger()

    def _send_refusal(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.batch.flush()
            self.transport.write(answer)
            self.linger()

    def linger(self) -> None:
        """Close once the client could read the answer: send EOF, then read and drop what
        it still sends until it closes its side, for at most the server's
        ``linger_seconds``.  The bound is a time, not a byte count: a client still
        uploading sends a byte budget's worth in milliseconds, and closing with its data
        unread would reset the connection while it writes, and the answer with it."""
        transport = self.transport
        if transport.is_closing() or self._lingering:
            return
        self.stopped = self._lingering = True
        self.batch.flush()
        if transport.can_write_eof():
            transport.write_eof()
        self._resume()
        self.server.loop.call_later(self.server.linger_seconds, transport.close)


__all__ = ["HIGH_WATER", "Connection"]
