"""Request framing (sans-I/O): bytes in, requests out, or a refusal.

:class:`RequestFramer` is fed what a client sends and tells its subclass (the connection,
:mod:`gateway.http.connection`; a recording sink in tests) what it found, through the
methods a subclass overrides: a request head (:meth:`RequestFramer.request_received`), its
body in pieces, its end, a WebSocket handshake that takes the connection over, or a
refusal, after which nothing more is parsed.  The bytes are tokenised by llhttp, handed in
as a :class:`Tokenizer` (:mod:`gateway.http.llhttp`), which calls back here; everything
decided about them is decided here, with :mod:`gateway.http.head`'s rules:

* a request head larger than ``max_header_bytes`` or with more than ``max_header_count``
  headers: 431 as soon as the limit is crossed (llhttp has no limit of its own and
  buffers a header value whole, at a cost growing with the square of its size, so the
  bytes fed while a head is pending are counted here); a chunked body's trailers count
  against the same limits, and are dropped (as nginx and Envoy drop them), never added
  to the request's headers;
* what llhttp refuses (400: CL with TE, two lengths, bad chunk sizes, bare LF, ...) and
  what :func:`gateway.http.head.check` refuses (505, 400, 501), a CONNECT with a body
  among them;
* a request that names a non-WebSocket ``Upgrade`` (``h2c``, ...) is framed as a plain
  request with its body, as nginx serves it, and the requests after it are read; a
  CONNECT ends the parsing (what follows its head is not HTTP), and one whose head
  announces a body is refused (400, see :func:`gateway.http.head.check`): llhttp ends
  it at its head, so the request handed on would claim a body it does not have.

Every input ends in exactly one of: requests framed one after the other, each with one
body framing, or a refusal with a status.
"""

from __future__ import annotations

from typing import Final, Protocol

from mypy_extensions import mypyc_attr

from gateway.http.downstream import Request
from gateway.http.head import MARKERS, NOTED, Refusal, body_framing, check
from gateway.types import Headers


class Tokenizer(Protocol):
    """llhttp as the framer uses it (see :mod:`gateway.http.llhttp`)."""

    def feed(self, data: bytes | memoryview) -> int:
        """Parse ``data``; -1, or the offset where parsing stopped after a head naming an
        Upgrade (or a CONNECT).  Raises :class:`~gateway.http.head.Refusal`."""
        ...

    def get_http_version(self) -> str: ...

    def get_method(self) -> bytes: ...

    def should_keep_alive(self) -> bool: ...

    def should_upgrade(self) -> bool: ...


class Limits:
    """The limits on a request head, shared by the connections of a server."""

    __slots__ = ("max_header_bytes", "max_header_count")

    def __init__(self, max_header_bytes: int = 65536, max_header_count: int = 100) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count  # Envoy's default


class Head:
    """A framed request head: the request, and how the exchange goes on."""

    __slots__ = ("expect_continue", "http10", "keep_alive", "request")

    def __init__(
        self, request: Request, keep_alive: bool, expect_continue: bool, http10: bool
    ) -> None:
        self.request = request
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.http10 = http10


_PLAIN: Final = 0
_WEBSOCKET: Final = 1
_TUNNEL: Final = 2
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
}


def is_websocket(headers: Headers) -> bool:
    """Whether an Upgrade request asks for a WebSocket (``Upgrade: websocket``)."""
    for name, value in headers:
        if name == b"upgrade" and value.strip(b" \t").lower() == b"websocket":
            return True
    return False


@mypyc_attr(allow_interpreted_subclasses=True)  # tests frame with a recording subclass
class RequestFramer:
    """Frames the requests of one connection (see the module's docstring).

    A subclass sets ``tokenizer`` (a :class:`Tokenizer` calling back this object),
    ``limits``, ``peer`` and ``scheme``, and overrides the sink methods below."""

    __slots__ = (
        "_body_only",
        "_buffered",
        "_buffering",
        "_expect",
        "_fields",
        "_handshake",
        "_head_bytes",
        "_headers",
        "_marked",
        "_noted",
        "_sections",
        "_skipped_body",
        "_upgrade",
        "_url",
        "in_head",
        "limits",
        "message_complete",
        "peer",
        "scheme",
        "stopped",
        "tokenizer",
    )

    tokenizer: Tokenizer
    __deletable__ = ("tokenizer",)  # a compiled class lets only these be deleted
    limits: Limits
    peer: str
    scheme: str

    def __init__(self) -> None:
        self.stopped = False  # nothing more is parsed: refused, upgraded or tunnelled
        self.in_head = False  # a request head has begun and is not complete
        self.message_complete = True  # between requests
        self._buffering = False  # llhttp is in a section it buffers: a head, or trailers
        self._buffered = 0  # bytes fed for that section, after the feed it began in
        self._sections = 0  # such sections begun on this connection
        self._fields = 0  # header (and trailer) fields of the request so far
        self._head_bytes = 0
        self._url = b""
        self._headers: Headers = []
        self._noted: Headers = []
        self._marked = False  # a marker header (head.MARKERS) is among the headers
        self._expect = False
        self._upgrade = _PLAIN
        self._skipped_body: bytes | None = None  # the framing of a body llhttp skipped
        self._handshake: Head | None = None  # a WebSocket handshake's head
        self._body_only = False  # parsing a stand-in head whose body is the skipped one

    # What a subclass is told -------------------------------------------------
    def head_begun(self) -> None:
        """The first byte of a request head arrived."""

    def request_received(self, head: Head) -> None:
        """A request head was framed; its body (if any) follows."""

    def body_received(self, chunk: bytes) -> None:
        """A piece of the latest request's body."""

    def request_complete(self) -> None:
        """The latest request's body is complete."""

    def upgraded(self, head: Head, rest: bytes) -> None:
        """A WebSocket handshake: the connection is no longer HTTP; ``rest`` is what
        followed its head."""

    def refused(self, status: int, reason: str, in_body: bool) -> None:
        """The input cannot be served; nothing more is parsed.  ``in_body``: it is the
        latest request's body that cannot be parsed (its head was handed on)."""

    # Feeding ----------------------------------------------------------------
    def feed(self, data: bytes | memoryview) -> None:
        """Frame the next bytes the client sent (ignored once :attr:`stopped`)."""
        if self.stopped:
            return
        if self._buffering:
            if self._buffered + len(data) > self.limits.max_header_bytes:
                self._feed_limited(memoryview(data))
                return
            self._buffered += len(data)
        self._tokenize(data)

    def _feed_limited(self, view: memoryview) -> None:
        """Feed bytes that would take the section llhttp buffers (a head, or a chunked
        body's trailers) past the limit: only up to the limit while that section lasts,
        so that it is refused there, not once buffered whole."""
        limit = self.limits.max_header_bytes
        while view and not self.stopped:
            if not self._buffering:
                self._tokenize(view)  # a section beginning in it is counted from the next feed
                return
            room = limit - self._buffered
            if len(view) <= room:
                self._buffered += len(view)
                self._tokenize(view)
                return
            section = self._sections
            self._buffered = limit
            self._tokenize(view[:room])
            if self._buffering and self._sections == section and not self.stopped:
                what = "request head" if self.in_head else "trailers"
                self._refuse(431, f"{what} too large")
                return
            view = view[room:]

    def _tokenize(self, data: bytes | memoryview) -> None:
        try:
            stopped_at = self.tokenizer.feed(data)
        except Refusal as refusal:
            self._refuse(refusal.status, refusal.reason)
            return
        if stopped_at >= 0:
            self._upgraded(bytes(memoryview(data)[stopped_at:]))

    def _upgraded(self, rest: bytes) -> None:
        """llhttp stopped after a head naming an Upgrade (or a CONNECT)."""
        if self._upgrade != _PLAIN:  # a WebSocket or a tunnel: no more HTTP on it
            self.stopped = True
            handshake, self._handshake = self._handshake, None
            if handshake is not None:
                self.upgraded(handshake, rest)
            return
        # Any other Upgrade is ignored, as nginx ignores it: the request is plain HTTP.
        # llhttp skipped its body, though: a stand-in head with the same framing lets it
        # read that body for this request (see on_headers_complete).
        framing = self._skipped_body
        if framing is not None:
            self._skipped_body = None
            self._body_only = True
            self._tokenize(b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
        if rest:
            self.feed(rest)

    def _refuse(self, status: int, reason: str) -> None:
        in_body = not self.in_head and not self.message_complete
        self.stopped = True
        self.in_head = False
        self.refused(status, reason, in_body)

    # llhttp's callbacks -------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._expect = False
        self._headers = []
        self._noted = []
        self._marked = False
        self._head_bytes = 0
        self._fields = 0
        self._buffering = True
        self._buffered = 0
        self._sections += 1
        self.message_complete = False
        self._upgrade = _PLAIN
        if not self._body_only:
            self.in_head = True
            self.head_begun()

    def on_url(self, url: bytes) -> None:
        size = self._head_bytes + len(url)
        if size > self.limits.max_header_bytes:
            raise Refusal(431, "request line too long")
        self._head_bytes = size
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._head_bytes + len(name) + len(value) + 4
        if size > self.limits.max_header_bytes:
            raise Refusal(431, "request head too large" if self.in_head else "trailers too large")
        if self._fields >= self.limits.max_header_count:
            raise Refusal(431, "too many request headers")
        self._head_bytes = size
        self._fields += 1
        if not self.in_head:
            # A trailer of a chunked body: counted, then dropped, as nginx and Envoy drop
            # them (the request's headers were checked and routed on already).
            return
        name = name.lower()
        if name in NOTED:
            if name in MARKERS:
                self._marked = True
            else:
                if name == b"expect" and value.lower() == b"100-continue":
                    self._expect = True
                self._noted.append((name, value))
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._buffering = False
        if self._body_only:  # the stand-in head of a skipped body: no request of its own
            return
        tokenizer = self.tokenizer
        version = tokenizer.get_http_version()
        raw_method = tokenizer.get_method()
        check(version, self._noted, raw_method == b"CONNECT")
        self.in_head = False
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        url = self._url
        # partition, not `b"#" in url`: bytes.__contains__ first tries its argument as an
        # int, and the TypeError it raises and clears costs more than the whole split
        path, _, query = url.partition(b"#")[0].partition(b"?")
        request = Request(
            method, url, path, query, self._headers, self.peer, self.scheme, self._marked
        )
        http10 = version == "1.0"
        if tokenizer.should_upgrade():
            if method == "CONNECT":
                self._upgrade = _TUNNEL
            elif method == "GET" and not http10 and is_websocket(self._headers):
                self._upgrade = _WEBSOCKET
                self._handshake = Head(request, False, False, False)
                return
            else:
                self._skipped_body = body_framing(self._noted)
        keep_alive = tokenizer.should_keep_alive() and self._upgrade == _PLAIN
        self.request_received(Head(request, keep_alive, self._expect and not http10, http10))

    def on_chunk_header(self) -> None:
        # What follows a chunk's size line is buffered by llhttp when it is the last
        # chunk's trailers: counted like a head until the chunk's data comes.
        self._buffering = True
        self._buffered = 0
        self._sections += 1

    def on_chunk_complete(self) -> None:
        self._buffering = False

    def on_body(self, body: bytes) -> None:
        self._buffering = False
        self.body_received(body)

    def on_message_complete(self) -> None:
        if self._skipped_body is not None:  # not yet: llhttp skipped the body (_upgraded)
            return
        self.message_complete = True
        self._buffering = self._body_only = False
        if self._upgrade == _WEBSOCKET:
            return
        self.request_complete()


__all__ = ["Head", "Limits", "RequestFramer", "Tokenizer", "is_websocket"]
