"""The proxy's HTTP/1.1 server: uvicorn's httptools protocol, with the request served
below ASGI.

uvicorn keeps what it does well: accepting connections, keep-alive, pipelining, flow
control, graceful shutdown, lifespan, and the WebSocket handshake (upgrades still
reach the proxy as ASGI); keep-alive and head deadlines are checked by one sweep a
second instead of a timer per request.  A plain HTTP request, though, skips the ASGI
layer: its head becomes a :class:`~gateway.http.downstream.Request` straight from the
parser, and a :class:`~gateway.http.cycle.NativeCycle` answers it by writing HTTP/1.1
to the transport (one ``write`` for a whole response).  Measured on the benchmark,
this takes about a third off the proxy's CPU per request.

The server also refuses, before the proxy sees them, the requests the ASGI scope could
not express or that nginx and Envoy refuse (:mod:`gateway.http.head` has the rules):

* a request head larger than ``max_header_bytes`` or with more than
  ``max_header_count`` headers: 431 as soon as the limit is crossed (httptools has no
  limit of its own and buffers a header value whole, at a cost growing with the square
  of its size, so the bytes fed to it while a head is pending are counted here); a
  chunked body's trailers count against the same limits, and are dropped (as nginx and
  Envoy drop them), never added to the request's headers;
* what the parser refuses (400) and what :func:`gateway.http.head.check` refuses;
* a head must also arrive whole within ``head_timeout``.

A refusal is written after the responses still owed for the requests pipelined before
it (never in their place), then the connection is closed.  A request that names a
non-WebSocket ``Upgrade`` (``h2c``, ...) is served as a plain request with its body, as
nginx serves it, and the requests pipelined after it are read.  A response that ends
the connection while the client may still be sending closes it after a short bounded
drain, so that a TCP reset does not destroy the answer in flight.

This module and :mod:`gateway.http.cycle` are the only ones that touch uvicorn internals.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any, cast

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gateway.http.cycle import Handler, NativeCycle
from gateway.http.downstream import Request
from gateway.http.head import NOTED, Refusal, body_framing, check, refusal_response
from gateway.types import Headers

log = logging.getLogger("strangler.protocol")


class GatewayProtocol(HttpToolsProtocol):
    handler: Handler  # set by protocol_class()
    max_header_bytes = 65536
    max_header_count = 100  # Envoy's default; more is refused with 431
    on_refused: Callable[[int], None] = staticmethod(lambda status: None)  # counts refusals
    head_timeout = 60.0  # the whole request head must arrive within this (slow clients)
    linger_seconds = 1.0  # after a refusal, how long what the client still sends is read
    linger_bytes = 1 << 20  # ... and how much of it, before the connection is closed
    _head_started = 0.0  # loop time of a request head's first byte; 0 when none is pending
    _idle_since = 0.0  # loop time the connection last fell idle; 0 while a request is open
    _peer = "0.0.0.0"
    _buffering = False  # the parser is in a section it buffers: a head, or trailers
    _buffered = 0  # bytes fed to the parser for that section, after the read it began in
    _sections = 0  # such sections begun on this connection
    _fields = 0  # header (and trailer) fields of the request so far
    _message_complete = True  # the parser is between requests
    _active: NativeCycle | None = None  # the request being served (others wait in pipeline)
    _stopped = False  # nothing more is parsed: a refusal is owed or sent, or a tunnel began
    _refusal: bytes | None = None  # owed once the responses before it are written
    _drain_left = 0  # bytes still read and dropped before a refused connection is closed
    _upgrading = False  # the request is a WebSocket handshake
    _tunnel = False  # the request is a CONNECT: what follows its head is not HTTP
    _skipped_body: bytes | None = None  # the framing of a body llhttp skipped (an Upgrade's)
    _body_only = False  # parsing a stand-in head whose body is the skipped one

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._peer = self.client[0] if self.client else "0.0.0.0"
        self._idle_since = self.loop.time()
        _watch(self)

    # Reading ------------------------------------------------------------
    def data_received(self, data: bytes | memoryview) -> None:
        if self._stopped:
            self._discard(len(data))
        elif self._buffering and self._buffered + len(data) > self.max_header_bytes:
            self._feed_limited(memoryview(data))
        else:
            if self._buffering:
                self._buffered += len(data)
            self._feed(data)

    def _feed_limited(self, view: memoryview) -> None:
        """Feed bytes that would take the section the parser buffers (a head, or a
        chunked body's trailers) past the limit: only up to the limit while that section
        lasts, so it is refused there, not once buffered whole."""
        while view and not self._stopped:
            if not self._buffering:
                self._feed(view)  # a section beginning in it is counted from the next read
                return
            room = self.max_header_bytes - self._buffered
            if len(view) <= room:
                self._buffered += len(view)
                self._feed(view)
                return
            section = self._sections
            self._buffered = self.max_header_bytes
            self._feed(view[:room])
            if self._buffering and self._sections == section and not self._stopped:
                head = self._head_started != 0.0
                self._refuse(431, "request head too large" if head else "trailers too large")
                return
            view = view[room:]

    def _feed(self, data: bytes | memoryview) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data, exc.args[0])
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if isinstance(refusal, Refusal):
                self._refuse(refusal.status, refusal.reason)
            elif isinstance(exc, httptools.HttpParserCallbackError):
                log.error("error parsing a request from %s", self._peer, exc_info=refusal)
                self._refuse(500, "internal gateway error")
            else:
                self._refuse(400, f"malformed request: {exc}")

    def _upgraded(self, data: bytes | memoryview, offset: int) -> None:
        """The parser stopped after a request naming an Upgrade (or a CONNECT)."""
        if self._upgrading:  # uvicorn's WebSocket protocol takes the connection
            self._stopped = True
            self.handle_websocket_upgrade()
            return
        if self._tunnel:  # the proxy refuses CONNECT, and what follows is not HTTP
            self._stopped = True
            self.flow.pause_reading()
            return
        # Any other Upgrade is ignored, as nginx ignores it: the request is plain HTTP.
        # llhttp skipped its body, though: a stand-in head with the same framing lets
        # the parser read that body for this request (see on_headers_complete).
        rest = memoryview(data)[offset:]
        framing = self._skipped_body
        if framing is not None:
            self._skipped_body = None
            self._body_only = True
            self._feed(b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
        if rest:
            self.data_received(rest)

    def _discard(self, size: int) -> None:
        """Bytes arriving after parsing stopped: dropped while lingering, else not read."""
        if self._drain_left > 0:
            self._drain_left -= size
            if self._drain_left <= 0:
                self.transport.close()
        else:
            self.flow.pause_reading()

    # Refusing and closing ----------------------------------------------
    def _refuse(self, status: int, reason: str) -> None:
        """Answer with ``status`` a request that must not be served, once the responses
        owed for the requests before it are written; nothing more is parsed."""
        self.on_refused(status)
        in_head = self._head_started != 0.0
        self._stopped = True
        self._head_started = 0.0
        self._idle_since = 0.0
        response = refusal_response(status, reason)
        cycle = self.cycle
        if not in_head and not self._message_complete and cycle is not None:
            # The latest request's body is what cannot be parsed.
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()  # never started: refused in its turn
            else:
                cycle.disconnected = True  # its handler stops at its next read or write
                cycle.message_event.set()
                if cycle.response_started:  # too late to answer it
                    self.transport.close()
                    return
                self._send_refusal(response)
                return
        active = self._active
        if self.pipeline or (active is not None and not active.response_complete):
            self._refusal = response
            self.flow.pause_reading()
        else:
            self._send_refusal(response)

    def _send_refusal(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)
            self._linger()

    def end_connection(self) -> None:
        """Close after a response that ends the connection; if the client may still be
        sending its request, linger first."""
        if self._message_complete:
            self.transport.close()
        else:
            self._linger()

    def _linger(self) -> None:
        """Close once the client could read the answer: send EOF, then read and drop what
        it still sends, for at most ``linger_seconds`` and ``linger_bytes`` (closing with
        unread data would reset the connection, and the answer with it)."""
        transport = self.transport
        if transport.is_closing():
            return
        self._stopped = True
        self._drain_left = self.linger_bytes
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(self.linger_seconds, transport.close)

    def on_response_complete(self) -> None:
        # uvicorn arms a keep-alive timer per response; the sweep below checks idle
        # connections once a second instead, which costs nothing per request.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.pipeline:
            if not self._stopped:
                self.flow.resume_reading()
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._refusal is not None:
            refusal, self._refusal = self._refusal, None
            self._send_refusal(refusal)
        elif not self._stopped:
            self.flow.resume_reading()
            self._idle_since = self.loop.time()

    # Parser callbacks ----------------------------------------------------
    def on_message_begin(self) -> None:
        # No ASGI scope is built here: plain requests never need one (see below).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._noted: Headers = []
        self._head_bytes = 0
        self._fields = 0
        self._buffering = True
        self._buffered = 0
        self._sections += 1
        self._message_complete = False
        # uvicorn's keep-alive timer restarts on every byte, so a client trickling its
        # head would never be cut off: the head as a whole gets a deadline, checked by one
        # sweep a second rather than a timer per request.
        self._head_started = self.loop.time()
        self._idle_since = 0.0

    def on_url(self, url: bytes) -> None:
        size = self._head_bytes + len(url)
        if size > self.max_header_bytes:
            raise Refusal(431, "request line too long")
        self._head_bytes = size
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._head_bytes + len(name) + len(value) + 4
        if size > self.max_header_bytes:
            raise Refusal(
                431, "request head too large" if self._head_started else "trailers too large"
            )
        if self._fields >= self.max_header_count:
            raise Refusal(431, "too many request headers")
        self._head_bytes = size
        self._fields += 1
        if not self._head_started:
            # A trailer of a chunked body: counted, then dropped, as nginx and Envoy drop
            # them (the request's headers were checked and routed on already).
            return
        name = name.lower()  # as uvicorn's own on_header does
        if name in NOTED:
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
            self._noted.append((name, value))
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self._buffering = False
        if self._body_only:  # the stand-in head of a skipped body: no request of its own
            self._head_started = 0.0
            return
        version = parser.get_http_version()
        check(version, self._noted)
        self._head_started = 0.0
        method = parser.get_method().decode("ascii")
        if parser.should_upgrade():
            if self._should_upgrade():
                # A WebSocket handshake: uvicorn's WebSocket protocol takes the connection
                # and runs the proxy as an ASGI app; it needs the method and headers.
                self._upgrading = True
                self.scope = cast(Any, {"method": method, "headers": self.headers})
                return
            self._tunnel = method == "CONNECT"
            if not self._tunnel:
                self._skipped_body = body_framing(self._noted)
        url = self.url
        path, _, query = (url.partition(b"#")[0] if b"#" in url else url).partition(b"?")
        request = Request(method, url, path, query, self.headers, self._peer, self.scheme or "http")
        keep_alive = version != "1.0" and parser.should_keep_alive() and not self._tunnel
        existing = self.cycle
        self.cycle = cycle = NativeCycle(self, request, keep_alive)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:
            # Pipelined requests wait their turn (uvicorn starts them from its queue).
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def on_chunk_header(self) -> None:
        # What follows a chunk's size line is buffered by httptools when it is the last
        # chunk's trailers: counted like a head until the chunk's data comes.
        self._buffering = True
        self._buffered = 0
        self._sections += 1

    def on_chunk_complete(self) -> None:
        self._buffering = False

    def on_body(self, body: bytes) -> None:
        self._buffering = False
        cycle = self.cycle
        if cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        if self._skipped_body is not None:  # not yet: llhttp skipped the body (_upgraded)
            return
        self._message_complete = True
        self._buffering = self._body_only = False
        cycle = self.cycle
        if self._upgrading or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if not isinstance(cycle, NativeCycle):
            super()._start_asgi_task(cycle, app)
            return
        self._active = cycle
        task = self.loop.create_task(cycle.run(self.handler))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


_watched: weakref.WeakSet[GatewayProtocol] = weakref.WeakSet()
_sweeping: set[asyncio.AbstractEventLoop] = set()


def _watch(protocol: GatewayProtocol) -> None:
    _watched.add(protocol)
    loop = protocol.loop
    if loop not in _sweeping:
        _sweeping.add(loop)
        loop.call_later(1.0, _sweep, loop)


def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    """Close connections whose request head is overdue, or idle past keep-alive."""
    now = loop.time()
    for protocol in list(_watched):
        if protocol.transport is None or protocol.transport.is_closing():
            _watched.discard(protocol)
        elif (protocol._head_started and now - protocol._head_started > protocol.head_timeout) or (
            protocol._idle_since and now - protocol._idle_since > protocol.timeout_keep_alive
        ):
            protocol.transport.close()
            _watched.discard(protocol)
    if loop.is_closed():
        _sweeping.discard(loop)
    else:
        loop.call_later(1.0, _sweep, loop)


def protocol_class(
    handler: Handler,
    max_header_bytes: int,
    head_timeout: float = 60.0,
    max_header_count: int = GatewayProtocol.max_header_count,
    on_refused: Callable[[int], None] | None = None,
) -> type[GatewayProtocol]:
    """A protocol class serving plain requests with ``handler`` (uvicorn instantiates
    the class; the ASGI app it is given serves WebSocket upgrades and lifespan)."""
    return type(
        "GatewayProtocol",
        (GatewayProtocol,),
        {
            "handler": staticmethod(handler),
            "max_header_bytes": max_header_bytes,
            "max_header_count": max_header_count,
            "head_timeout": head_timeout,
            "on_refused": staticmethod(on_refused or GatewayProtocol.on_refused),
        },
    )
