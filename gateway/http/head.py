"""Request-head rules (pure): what the HTTP/1.1 server refuses before the proxy sees a
request, and how the refusal reads.

The parser (llhttp, through httptools) already refuses what does not parse: spaces,
control characters or NUL in the target or a header, obs-fold continuation lines,
whitespace before a header's colon, a Content-Length that is not plain digits (``+3``,
``1 2``, ``-1``) or overflows, two Content-Lengths, Content-Length with
Transfer-Encoding, two Transfer-Encodings, a chunk size that overflows, the HTTP/2
preface.  What parses but nginx or Envoy would still refuse is decided here, from the
few headers the server notes while parsing (:data:`NOTED`):

* an HTTP version other than 1.0 and 1.1 (``HTTP/2.0`` in a request line, HTTP/0.9): 505;
* Host missing from an HTTP/1.1 request, or sent twice (RFC 9112 section 3.2): 400;
* a Host that is not a plausible ``host[:port]``, by nginx's rules: empty, or with a
  ``/``, ``\\``, ``..``, a space or a control character: 400;
* Transfer-Encoding in an HTTP/1.0 request: 400 (nginx);
* a Transfer-Encoding other than a lone ``chunked`` (``gzip, chunked``): 501, as nginx
  answers; served, the coding would be dropped and the body forwarded undecoded;
* a CONNECT with a body framing (a Content-Length other than 0, or a Transfer-Encoding):
  400, as Envoy refuses it.  A CONNECT request has no content (RFC 9110 section 9.3.6):
  the parser ends the request at its head, so its framing header would claim a body that
  was never framed, and the bytes it announces would be left for a tunnel.

HTTP/1.0 without Host is served, as nginx serves it.

The server also notes whether a request carries one of the gateway's own markers
(:data:`MARKERS`, from :mod:`strangler_events.origin`), which the proxy removes from
client requests: the check costs nothing more for a request without one, since it is
made only for a name already found in :data:`NOTED`.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Final

from gateway.types import Headers
from strangler_events.origin import MARKERS as _MARKER_NAMES

#: the gateway's marker headers: a client's request carrying one is ``marked``
MARKERS = frozenset(name.encode() for name in _MARKER_NAMES)
#: the header names (lower-cased) the server keeps aside for :func:`check`, and the markers
NOTED = frozenset({b"host", b"transfer-encoding", b"content-length", b"expect"}) | MARKERS

#: statuses after which the connection is closed: the request, or what follows it on the
#: connection, is suspect.  nginx turns keep-alive off for 400, 413, 414, 500 and 501
#: (ngx_http_special_response_handler), and closes on a head too large, a client
#: timeout and an unsupported version; Envoy closes after a 431
CLOSES = frozenset({400, 408, 413, 414, 431, 500, 501, 505})

_HOST_FORBIDDEN: Final = re.compile(rb"[\x00-\x20\x7f/\\]|\.\.")


class Refusal(Exception):
    """The request is refused before the proxy sees it; ``status`` and ``reason`` say how."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check(version: str, noted: Headers, connect: bool = False) -> None:
    """Raise :class:`Refusal` if a request head with HTTP ``version`` and the ``noted``
    headers (see :data:`NOTED`) must not be served; ``connect``: its method is CONNECT."""
    if version != "1.1" and version != "1.0":
        raise Refusal(505, f"HTTP/{version} is not supported")
    hosts = 0
    for name, value in noted:
        if name == b"host":
            hosts += 1
            if not valid_host(value):
                raise Refusal(400, "invalid Host header")
        elif name == b"transfer-encoding":
            if version == "1.0":
                raise Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
            if value.strip(b" \t").lower() != b"chunked":
                raise Refusal(501, "Transfer-Encoding other than chunked is not supported")
    if hosts > 1:
        raise Refusal(400, "more than one Host header")
    if hosts == 0 and version == "1.1":
        raise Refusal(400, "HTTP/1.1 request without a Host header")
    if connect and body_framing(noted) is not None:
        raise Refusal(400, "CONNECT request with a body")


_checked: Final[dict[bytes, bool]] = {}


def valid_host(value: bytes) -> bool:
    """Whether a Host value is a plausible ``host[:port]`` (nginx's ngx_http_validate_host).

    Memoised: a worker sees the same few hosts over and over."""
    valid = _checked.get(value)
    if valid is None:
        if len(_checked) >= 1024:
            _checked.clear()
        valid = _checked[value] = _valid_host(value)
    return valid


def _valid_host(value: bytes) -> bool:
    host = value.strip(b" \t")
    if _HOST_FORBIDDEN.search(host):
        return False
    if host.startswith(b"["):  # an IPv6 literal
        name = host.partition(b"]")[0]
    else:
        name = host.partition(b":")[0]
        if name.endswith(b"."):
            name = name[:-1]
    return bool(name)


def body_framing(noted: Headers) -> bytes | None:
    """The framing header of a request's body (from its noted headers), or None when it
    has none."""
    for name, value in noted:
        if name == b"transfer-encoding":
            return b"transfer-encoding: chunked"
        if name == b"content-length":
            length = int(value)  # the parser has refused anything but digits
            return b"content-length: %d" % length if length else None
    return None


def refusal_response(status: int, reason: str) -> bytes:
    """A whole HTTP/1.1 response refusing a request (a JSON body like the proxy's own
    errors), which also closes the connection."""
    body = json.dumps({"error": reason}).encode()
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
    )
