"""uvicorn's httptools protocol, taught two things the ASGI scope does not carry.

* The request target as sent: uvicorn parses ``GET http://other.host/x`` down
  to path ``/x``, which would let an absolute-form request for a foreign host
  look like a local one.  The proxy refuses any target not in origin-form.
* The size of the request head: httptools has no limit of its own, so the
  headers are counted as they arrive, stored only up to the limit, and the
  proxy answers 431 past it.

Both go to the proxy in ``scope["extensions"]["strangler"]``.

It also coalesces writes: uvicorn writes a response's head and body with two
``write()`` calls, which costs a second syscall (and often a second TCP segment)
per response.  Writes made during one event-loop iteration are joined and sent
once at the end of it.

This is the only module that touches uvicorn internals.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one loop iteration leave as one ``write``."""

    __slots__ = ("_transport", "_loop", "_pending", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        if not self._scheduled:
            # A fallback for streamed bodies; a finished response is flushed at once.
            self._scheduled = True
            self._loop.call_soon(self._flush_later)

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.write(line)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatewayProtocol(HttpToolsProtocol):
    max_header_bytes = 65536
    head_timeout = 60.0  # the whole request head must arrive within this (slow clients)
    _head_started = 0.0  # loop time of a request head's first byte; 0 when none is pending

    def connection_made(self, transport: Any) -> None:
        loop = asyncio.get_running_loop()
        super().connection_made(cast(asyncio.Transport, CoalescingTransport(transport, loop)))

    def on_response_complete(self) -> None:
        transport: Any = self.transport  # our CoalescingTransport
        transport.flush()
        super().on_response_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._overflow = False
        # uvicorn's keep-alive timer restarts on every byte, so a client trickling its
        # head would never be cut off: the head as a whole gets a deadline, checked by one
        # sweep a second rather than a timer per request.
        self._head_started = self.loop.time()
        _watch(self)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)
        if self._head_bytes > self.max_header_bytes:
            self._overflow = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.max_header_bytes:
            self._overflow = True  # stop storing: the request is answered with 431
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_started = 0.0
        scope: Any = self.scope
        scope["extensions"] = {"strangler": {"target": self.url, "overflow": self._overflow}}
        super().on_headers_complete()


_watched: weakref.WeakSet[GatewayProtocol] = weakref.WeakSet()
_sweeping: set[asyncio.AbstractEventLoop] = set()


def _watch(protocol: GatewayProtocol) -> None:
    if protocol in _watched:
        return
    _watched.add(protocol)
    loop = protocol.loop
    if loop not in _sweeping:
        _sweeping.add(loop)
        loop.call_later(1.0, _sweep, loop)


def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    """Close connections whose request head is overdue."""
    now = loop.time()
    for protocol in list(_watched):
        if protocol.transport is None or protocol.transport.is_closing():
            _watched.discard(protocol)
        elif protocol._head_started and now - protocol._head_started > protocol.head_timeout:
            protocol.transport.close()
            _watched.discard(protocol)
    if loop.is_closed():
        _sweeping.discard(loop)
    else:
        loop.call_later(1.0, _sweep, loop)


def protocol_class(max_header_bytes: int, head_timeout: float = 60.0) -> type[GatewayProtocol]:
    """A protocol class with these limits (uvicorn instantiates the class)."""
    return type(
        "GatewayProtocol",
        (GatewayProtocol,),
        {"max_header_bytes": max_header_bytes, "head_timeout": head_timeout},
    )
