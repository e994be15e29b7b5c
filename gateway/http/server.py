"""The proxy's HTTP/1.1 server: its own asyncio protocol on llhttp, no ASGI on the hot path.

:class:`Server` accepts connections on a listening socket
(:class:`~gateway.http.connection.Connection` each), runs a handler per request with a
:class:`~gateway.http.cycle.NativeCycle` as its
:class:`~gateway.http.downstream.Responder`, hands a WebSocket handshake to
:mod:`gateway.http.websocket` (which serves it through the ASGI app), and closes
connections past their deadlines with one sweep a second (no timer per connection):

* a request head must arrive whole within ``head_timeout`` (a client trickling its head
  is cut off, however steadily it trickles);
* a handler waiting for the request body longer than ``body_timeout`` gets no more of
  it, and the client a 408 (the proxy also has its own deadline per read);
* a connection idle longer than ``keep_alive`` is closed.

:meth:`Server.drain` stops gracefully: it stops accepting, closes idle connections, lets
the requests in flight finish (their responses say ``connection: close``), and after
``grace`` seconds cancels what is left.  Request framing is
:mod:`gateway.http.framing`'s, response framing :mod:`gateway.http.response`'s, and what
is refused is listed there and in :mod:`gateway.http.head`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Final, cast

from gateway.http.batch import WriteBatch
from gateway.http.connection import Connection
from gateway.http.cycle import Handler, NativeCycle
from gateway.http.downstream import Request
from gateway.http.framing import Limits
from gateway.http.websocket import App, WebSocketSession

log = logging.getLogger("strangler.protocol")
SWEEP_INTERVAL: Final = 1.0
CONNECTION_TASK: Final = "strangler-connection"  # the name of the task serving a connection


def _ignore(status: int) -> None:
    return None


class Server:
    """An HTTP/1.1 listener serving ``handler`` (WebSocket handshakes go to ``app``)."""

    loop: asyncio.AbstractEventLoop  # set by start()
    batch: WriteBatch  # the responses of a turn of the loop (set by start())

    def __init__(
        self,
        handler: Handler,
        app: App | None = None,
        *,
        max_header_bytes: int = 65536,
        max_header_count: int = 100,
        head_timeout: float = 60.0,
        body_timeout: float = 60.0,
        keep_alive: float = 5.0,
        on_refused: Callable[[int], None] = _ignore,
        linger_seconds: float = 1.0,
        scheme: str = "http",
    ) -> None:
        self.handler = handler
        self.app = app
        self.limits = Limits(max_header_bytes, max_header_count)
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.keep_alive = keep_alive
        self.on_refused = on_refused  # counts refusals by status
        # after a refusal, how long what the client still sends is read and dropped before
        # the connection closes (Envoy's delayed_close_timeout; nginx's lingering_time)
        self.linger_seconds = linger_seconds
        self.scheme = scheme
        self.connections: set[Connection] = set()
        self.sessions: set[WebSocketSession] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        self._listener: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._plain_tasks = True  # no task factory on the loop (set by start())

    async def start(self, sock: socket.socket) -> None:
        """Accept connections on the listening ``sock``."""
        self.use_loop(asyncio.get_running_loop())
        self._listener = await self.loop.create_server(self._connection, sock=sock, backlog=2048)
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on ``loop`` (start() calls it; a test driving connections by hand too)."""
        self.loop = loop
        self.batch = WriteBatch(loop)
        self._plain_tasks = loop.get_task_factory() is None

    def _connection(self) -> asyncio.Protocol:
        # A Connection has every asyncio.Protocol method without inheriting the class: a
        # compiled (native) class takes at most one base, its framer.
        return cast(asyncio.Protocol, Connection(self))

    def run(self, conn: Connection, cycle: NativeCycle) -> None:
        """Answer ``cycle``, then the requests that follow it on ``conn``, in one task
        (called by the connection when it has none): a task per connection rather than
        per request, as a keep-alive client sends one request after another.  The next
        request starts once the handler has returned from the one before."""
        coro = self._serve(conn, cycle)
        if self._plain_tasks:
            # A Task made here is named once for all: the loop's create_task has the Task
            # format a "Task-<n>" name (a sprintf) before it sets a name.
            task = asyncio.Task(coro, loop=self.loop, name=CONNECTION_TASK)
        else:  # the loop has a task factory: it makes the tasks
            task = self.loop.create_task(coro)
        conn.runner = task
        self.tasks.add(task)

    async def _serve(self, conn: Connection, cycle: NativeCycle) -> None:
        try:
            following: NativeCycle | None = cycle
            while following is not None:
                await following.run(self.handler)
                following = await conn.next_request()
        finally:
            # Leaving the set itself: a done callback would cost the loop a call.  While
            # this runs, the connection's runner is this coroutine's task (not
            # asyncio.current_task(), which has no loop to ask when a coroutine left
            # pending is closed as the loop is collected).
            task = conn.runner
            conn.runner_ended()
            if task is not None:
                self.tasks.discard(task)

    def upgrade(
        self, transport: asyncio.Transport, request: Request, rest: bytes, write_paused: bool
    ) -> None:
        """A WebSocket handshake: the connection becomes a session served by the app.
        ``write_paused``: the transport's buffer is already full, and the session must
        wait for ``resume_writing`` before it writes (no second ``pause_writing`` comes)."""
        session = WebSocketSession(self.app, transport, request, self.sessions)
        transport.set_protocol(session)
        if write_paused:
            session.pause_writing()
        session.begin(rest)

    def _sweep(self) -> None:
        """Close connections whose request head is overdue, or idle past keep-alive; answer
        408 to requests whose body is overdue."""
        now = self.loop.time()
        head_timeout, body_timeout, keep_alive = (
            self.head_timeout,
            self.body_timeout,
            self.keep_alive,
        )
        for conn in list(self.connections):
            if (conn.head_at and now - conn.head_at > head_timeout) or (
                conn.idle_since and now - conn.idle_since > keep_alive
            ):
                self.connections.discard(conn)
                self.batch.flush()
                conn.transport.close()
            else:
                conn.body_overdue(now, body_timeout)
        if self._listener is not None:
            self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    async def drain(self, grace: float = 30.0) -> None:
        """Stop accepting, close idle connections, let requests in flight finish (for at
        most ``grace`` seconds), then close what is left."""
        self.draining = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.batch.flush()  # the last responses of idle connections
        for conn in list(self.connections):
            if not conn.busy:
                conn.transport.close()
                conn.no_next_request()  # its task ends now, not once the loop says it closed
        deadline = self.loop.time() + grace
        while self.tasks:  # a connection whose task had ended starts one for its next request
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait(list(self.tasks), timeout=remaining)
            # A task leaves the set as its coroutine ends; one cancelled before its first
            # step never ran its coroutine, so it is dropped here.
            self.tasks.difference_update(done)
        for task in list(self.tasks):
            task.add_done_callback(self.tasks.discard)  # it may end without having run
            task.cancel()
        for session in list(self.sessions):
            session.close()
        self.batch.flush()
        for conn in list(self.connections):
            conn.transport.close()
        if listener is not None:
            await listener.wait_closed()


__all__ = ["SWEEP_INTERVAL", "Server"]
