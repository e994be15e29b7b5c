"""Response framing (pure): the bytes of a response head, a body chunk, and the few whole
responses the server writes on its own.

:func:`whole` frames a whole response (adding its Content-Length); :func:`head` decides
how a streamed body is delimited on the wire: by its own Content-Length, by chunked coding
(to an HTTP/1.1 client), or by closing the connection (to an HTTP/1.0 client, which knows
no chunked coding).  Both decide whether the connection stays open after the response
(:data:`~gateway.http.head.CLOSES`, the client's wish).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from gateway.http.head import CLOSES
from gateway.types import Headers

#: statuses whose responses never have a body
NO_BODY: Final = frozenset({204, 304})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
ERROR_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
    b'content-length: 35\r\nconnection: close\r\n\r\n{"error": "internal gateway error"}'
)

#: how a response body is delimited
LENGTH: Final = 0  # by a Content-Length (the handler's, or the server's for a whole body)
CHUNKED: Final = 1  # by chunked transfer coding
UNTIL_CLOSE: Final = 2  # by closing the connection (HTTP/1.0 clients)

STATUS_LINES: Final[dict[int, bytes]] = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


class Head:
    """The head of a streamed response, and how its body goes on the wire.

    ``parts`` ends just before the blank line: :meth:`streamed` adds it."""

    __slots__ = ("framing", "keep_alive", "parts", "sized")

    def __init__(self, parts: list[bytes], sized: bool, framing: int, keep_alive: bool) -> None:
        self.parts = parts
        self.sized = sized  # the body is already delimited (Content-Length, HEAD, 204/304)
        self.framing = framing
        self.keep_alive = keep_alive

    def streamed(self) -> bytes:
        """The head of a response whose body follows in pieces (see :func:`piece`)."""
        parts = self.parts
        if self.framing == CHUNKED:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


def header_lines(parts: list[bytes], headers: Headers) -> bool:
    """Append the header lines to ``parts``; True when a Content-Length is among them."""
    sized = False
    for name, value in headers:
        if name == b"content-length":
            sized = True
        parts.append(name)
        parts.append(b": ")
        parts.append(value)
        parts.append(b"\r\n")
    return sized


def whole(
    status: int, headers: Headers, body: bytes, keep_alive: bool, head_only: bool, http10: bool
) -> tuple[bytes, bool]:
    """A whole response with ``body`` (a Content-Length added unless it has one), and
    whether the connection stays open after it; the arguments are :func:`head`'s."""
    if status in CLOSES:
        keep_alive = False
    parts = [status_line(status)]
    sized = header_lines(parts, headers) or head_only or status in NO_BODY
    if not sized:
        parts.append(b"content-length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    elif http10:
        parts.append(b"connection: keep-alive\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts), keep_alive


def head(status: int, headers: Headers, keep_alive: bool, head_only: bool, http10: bool) -> Head:
    """Frame a response head: ``keep_alive`` is what the request allows, ``head_only``
    says it answers HEAD, ``http10`` that the client speaks HTTP/1.0."""
    if status in CLOSES:
        keep_alive = False
    parts = [status_line(status)]
    sized = header_lines(parts, headers) or head_only or status in NO_BODY
    framing = LENGTH if sized else (UNTIL_CLOSE if http10 else CHUNKED)
    return Head(parts, sized, framing, keep_alive)


def connection_header(head: Head, http10: bool) -> None:
    """Add the Connection header a streamed response needs (a body delimited by closing
    ends the connection)."""
    if head.framing == UNTIL_CLOSE:
        head.keep_alive = False
    if not head.keep_alive:
        head.parts.append(b"connection: close\r\n")
    elif http10:
        head.parts.append(b"connection: keep-alive\r\n")


def piece(chunk: bytes, framing: int) -> bytes:
    """One piece of a streamed body as it goes on the wire."""
    if framing == CHUNKED:
        return b"%x\r\n%b\r\n" % (len(chunk), chunk)
    return chunk


__all__ = [
    "CHUNKED",
    "CONTINUE",
    "ERROR_500",
    "LAST_CHUNK",
    "LENGTH",
    "UNTIL_CLOSE",
    "Head",
    "connection_header",
    "head",
    "header_lines",
    "piece",
    "status_line",
    "whole",
]
