"""A WebSocket connection taken over from the HTTP server, served through an ASGI app.

When :mod:`gateway.http.framing` frames a WebSocket handshake, the connection's transport
is handed to a :class:`WebSocketSession`: the ``websockets`` sans-I/O server protocol
completes (or rejects) the handshake and frames messages, and the app (the proxy, whose
:mod:`gateway.proxy.websocket` relays to the backend) sees the ASGI WebSocket messages:
``websocket.connect``, ``receive`` and ``disconnect`` in; ``accept`` (with the backend's
subprotocol), ``send`` and ``close`` out.  A close before the accept is answered 403.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from websockets.frames import Frame, Opcode
from websockets.http11 import Request as Handshake
from websockets.protocol import State
from websockets.server import ServerProtocol

from gateway.http.downstream import Request

log = logging.getLogger("strangler.protocol")
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
MAX_MESSAGE = 16 << 20  # as uvicorn's default ws_max_size
MAX_QUEUE = 32  # messages the app has not taken yet, before reading stops (ws_max_queue)
CLOSE_TIMEOUT = 2.0  # how long the client has to answer a close the gateway began


def handshake_bytes(request: Request) -> bytes:
    """The handshake's head again, for the sans-I/O protocol to parse and answer."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.target)]
    for name, value in request.headers:
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


def scope_of(request: Request, server: Any) -> dict[str, Any]:
    """The ASGI WebSocket scope of a handshake."""
    offered = b",".join(v for n, v in request.headers if n == b"sec-websocket-protocol")
    subprotocols = [p.strip() for p in offered.decode("latin-1").split(",") if p.strip()]
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "wss" if request.scheme == "https" else "ws",
        "server": server,
        "client": (request.client, 0),
        "root_path": "",
        "path": unquote(request.path.decode("latin-1")),
        "raw_path": request.path,
        "query_string": request.query,
        "headers": request.headers,
        "subprotocols": subprotocols,
        "state": {},
    }


class WebSocketSession(asyncio.Protocol):
    """One WebSocket connection: the transport's protocol once the handshake arrived."""

    def __init__(
        self,
        app: App | None,
        transport: asyncio.Transport,
        request: Request,
        sessions: set[WebSocketSession],
    ) -> None:
        self.app = app
        self.transport = transport
        self.request = request
        self.sessions = sessions
        self.protocol = ServerProtocol(max_size=MAX_MESSAGE)
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.handshake: Handshake | None = None
        self.accepted = False
        self.answered = False  # the handshake was answered (accepted or rejected)
        self.closed = False  # the client is gone, or the close handshake is over
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._text = False
        self._writable: asyncio.Future[None] | None = None
        self._reading = True
        self._task: asyncio.Task[None] | None = None

    def begin(self, rest: bytes) -> None:
        """Parse the handshake (and what followed it), and start the app."""
        sessions = self.sessions
        sessions.add(self)
        self.data_received(handshake_bytes(self.request) + rest)
        if self.handshake is None:  # refused by the protocol itself (400, 431, ...)
            self.transport.close()
            sessions.discard(self)
            return
        scope = scope_of(self.request, self.transport.get_extra_info("sockname"))
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._serve(scope))
        self._task.add_done_callback(lambda _: sessions.discard(self))

    async def _serve(self, scope: dict[str, Any]) -> None:
        try:
            if self.app is None:
                raise RuntimeError("no app serves WebSocket upgrades")
            await self.app(scope, self._receive, self._send)
        except Exception:
            log.exception("error serving a WebSocket on %r", self.request.target)
            self._end(500, 1011)
        else:
            self._end(403, 1000)

    def _end(self, status: int, code: int) -> None:
        """The app is done: reject a handshake it left unanswered, close an open one."""
        if self.closed or self.transport.is_closing():
            return
        if not self.answered:
            self._answer(self.protocol.reject(status, ""))
        elif self.protocol.state is State.OPEN:
            self.protocol.send_close(code)
            self._flush()

    # the transport ------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Handshake):
                self.handshake = event
                self.inbox.put_nowait({"type": "websocket.connect"})
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()
        if self.inbox.qsize() >= MAX_QUEUE:
            self._read_as_due()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            self._text = frame.opcode is Opcode.TEXT
            self._fragments = []
        elif frame.opcode is not Opcode.CONT:
            if frame.opcode is Opcode.CLOSE:
                self._gone(self.protocol.close_rcvd.code if self.protocol.close_rcvd else 1005)
            return
        self._fragments.append(frame.data)
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = []
            if self._text:
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    self.protocol.fail(1007, "invalid UTF-8 in a text message")
                    return
                self.inbox.put_nowait({"type": "websocket.receive", "text": text})
            else:
                self.inbox.put_nowait({"type": "websocket.receive", "bytes": data})

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone(1006)
        self._release()

    def pause_writing(self) -> None:
        """The client reads nothing: the app's sends wait, and nothing more is read from
        the client either, so that its pings and closes cannot pile answers up in the
        buffer (at most one read's worth)."""
        if self._writable is None:  # paused once, whether by the transport or at hand-over
            self._writable = asyncio.get_running_loop().create_future()
            self._read_as_due()

    def resume_writing(self) -> None:
        self._release()
        self._read_as_due()

    def _read_as_due(self) -> None:
        """Read from the client only while what it is answered can be written, and while
        the app keeps up with its messages: reading stops at MAX_QUEUE untaken and starts
        again at half that (so memory is bounded by MAX_QUEUE messages and one read)."""
        if self._reading:
            due = self._writable is None and self.inbox.qsize() < MAX_QUEUE
        else:
            due = self._writable is None and self.inbox.qsize() <= MAX_QUEUE // 2
        if due != self._reading and not self.transport.is_closing():
            self._reading = due
            if due:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def close(self) -> None:
        """The server stops: going away (1001)."""
        if self.protocol.state is State.OPEN and not self.transport.is_closing():
            self.protocol.send_close(1001)
            self._flush()
        self.transport.close()
        self._release()  # a send waiting for a full buffer to drain finds the session closing

    # the app ----------------------------------------------------------------
    async def _receive(self) -> Message:
        message = await self.inbox.get()
        if not self._reading:
            self._read_as_due()
        return message

    async def _send(self, message: Message) -> None:
        if self._writable is not None:
            await self._writable
        kind = message["type"]
        if self.closed or self.transport.is_closing():
            return
        protocol = self.protocol
        if kind == "websocket.accept" and self.handshake is not None:
            response = protocol.accept(self.handshake)
            if message.get("subprotocol"):
                response.headers["Sec-WebSocket-Protocol"] = message["subprotocol"]
            self.accepted = response.status_code == 101
            self._answer(response)
        elif kind == "websocket.close" and not self.accepted:
            self._answer(protocol.reject(403, ""))
        elif protocol.state is not State.OPEN:
            return  # closing: nothing more is sent
        elif kind == "websocket.close":
            protocol.send_close(message.get("code", 1000), message.get("reason") or "")
            self._flush()
        elif kind == "websocket.send":
            if message.get("text") is not None:
                protocol.send_text(message["text"].encode())
            else:
                protocol.send_binary(message.get("bytes") or b"")
            self._flush()

    def _answer(self, response: Any) -> None:
        self.answered = True
        self.protocol.send_response(response)
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected():
            if self.protocol.close_rcvd is not None or self.protocol.close_sent is None:
                transport.close()  # the close handshake is over, or failed
            else:  # ours began it: give the client a moment to answer
                asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.close)

    def _gone(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": code})

    def _release(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)


__all__ = ["App", "WebSocketSession", "handshake_bytes", "scope_of"]
