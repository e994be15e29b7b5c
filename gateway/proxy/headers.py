"""Header rewriting between client and backend (pure; plain byte pairs, no ASGI objects).

Requests: hop-by-hop headers go (RFC 9110 section 7.6.1: Connection and the
headers it names, except Host; Keep-Alive, Proxy-Connection, TE, Trailer,
Transfer-Encoding, Upgrade), framing headers are re-made by the transport,
``X-Forwarded-For/Proto/Host`` are added (incoming ones kept only from trusted
proxies), ``X-Request-Id`` is generated when absent, ``traceparent`` passes
through untouched, and Host is kept or rewritten per backend.  Responses: hop-by-hop
headers go, the route and backend are named.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gateway.types import Headers

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Re-made by the upstream transport (framing) or answered by our own server.
_REFRAMED: Final = frozenset({b"content-length", b"expect"})
_FORWARDED: Final = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
# Other headers that claim to say who the client is: believed (passed on) only from a
# trusted proxy, as nginx's real_ip module and Envoy's xff_num_trusted_hops do; from
# anyone else they are dropped, so a backend never takes a client's word for its address.
_CLAIMS: Final = frozenset({b"forwarded", b"x-real-ip", b"true-client-ip", b"x-client-ip"})


#: request ids drawn at once: formatting one 128-bit number per request allocates an int,
#: a str and the bytes; slicing a batch's hex allocates only the bytes
ID_BATCH: Final = 128
_ids: Final[list[bytes]] = []
# A forked worker draws its own ids (random reseeds itself in the child too).
os.register_at_fork(after_in_child=_ids.clear)


def new_request_id() -> bytes:
    """32 hex digits.  An identifier, not a secret: the PRNG avoids a getrandom() call."""
    if not _ids:
        hexed = random.randbytes(16 * ID_BATCH).hex().encode()
        _ids.extend([hexed[i : i + 32] for i in range(0, 32 * ID_BATCH, 32)])
    return _ids.pop()


_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close"})


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The header names a Connection header marks hop-by-hop; never Host, which is the
    message's own (RFC 9110 section 7.2), so ``Connection: host`` cannot make a backend
    see another virtual host."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection" and value not in _PLAIN_CONNECTION:
            tokens.update(t.strip().lower() for t in value.split(b","))
    tokens.discard(b"close")
    tokens.discard(b"keep-alive")
    tokens.discard(b"host")
    return frozenset(tokens)


class TrustedProxies:
    """Which direct peers may pass their own X-Forwarded-* headers on."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._cache: dict[str, bool] = {}

    def __contains__(self, client_ip: str) -> bool:
        if not self._networks:
            return False
        hit = self._cache.get(client_ip)
        if hit is None:
            try:
                address = ipaddress.ip_address(client_ip)
                hit = any(address in n for n in self._networks)
            except ValueError:
                hit = False
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[client_ip] = hit
        return hit


@dataclass(slots=True, init=False)
class Outgoing:
    headers: Headers
    request_id: bytes
    host: bytes

    def __init__(
        self,
        headers: Headers,
        request_id: bytes,
        host: bytes,
    ) -> None:
        self.headers = headers
        self.request_id = request_id
        self.host = host


_DROP: Final = 0
_HOST: Final = 1
_CLAIM: Final = 2
_FORWARD: Final = 3
_REQUEST_ID: Final = 4
_CONNECTION: Final = 5
#: what the fast path of :func:`request_headers` does with a header, by name (absent: kept)
_ACTION: Final[dict[bytes, int]] = {
    **{n: _DROP for n in HOP_BY_HOP | _REFRAMED},
    b"connection": _CONNECTION,
    b"host": _HOST,
    **{n: _CLAIM for n in _CLAIMS},
    **{n: _FORWARD for n in _FORWARDED},
    b"x-request-id": _REQUEST_ID,
}


def request_headers(
    incoming: Headers,
    client_ip: str,
    scheme: str,
    trusted: bool,
    rewrite_host: bytes | None = None,
    keep_upgrade: bool = False,
) -> Outgoing:
    """Headers to send upstream for a request that arrived with ``incoming``.

    One pass over the headers, each looked up once; a request whose Connection header
    names other headers (or one kept for an upgrade) takes the general path."""
    if keep_upgrade:
        return _request_headers(incoming, client_ip, scheme, trusted, rewrite_host, True)
    out: Headers = []
    host = request_id = forwarded_for = forwarded_proto = forwarded_host = b""
    action_of = _ACTION.get
    for pair in incoming:
        action = action_of(pair[0])
        if action is None:
            out.append(pair)
        elif action == _HOST:
            host = pair[1]
        elif action == _REQUEST_ID:
            request_id = pair[1]
            out.append(pair)
        elif action == _CONNECTION:
            if pair[1] not in _PLAIN_CONNECTION:
                return _request_headers(incoming, client_ip, scheme, trusted, rewrite_host)
        elif action == _FORWARD and trusted:
            name = pair[0]
            if name == b"x-forwarded-for":
                forwarded_for = pair[1]
            elif name == b"x-forwarded-proto":
                forwarded_proto = pair[1]
            else:
                forwarded_host = pair[1]
        elif action == _CLAIM and trusted:
            out.append(pair)
    return _finish(
        out, request_id, host, client_ip, scheme, rewrite_host, forwarded_for,
        forwarded_proto, forwarded_host,
    )  # fmt: skip


def _finish(
    out: Headers,
    request_id: bytes,
    host: bytes,
    client_ip: str,
    scheme: str,
    rewrite_host: bytes | None,
    forwarded_for: bytes,
    forwarded_proto: bytes,
    forwarded_host: bytes,
) -> Outgoing:
    """Add what the gateway adds: a request id when absent, X-Forwarded-*, Host."""
    if not request_id:
        request_id = new_request_id()
        out.append((b"x-request-id", request_id))
    ip = client_ip.encode()
    out.append((b"x-forwarded-for", forwarded_for + b", " + ip if forwarded_for else ip))
    out.append((b"x-forwarded-proto", forwarded_proto or scheme.encode()))
    if host or forwarded_host:
        out.append((b"x-forwarded-host", forwarded_host or host))
    out.append((b"host", rewrite_host if rewrite_host is not None else host or b"localhost"))
    return Outgoing(out, request_id, host)


def _request_headers(
    incoming: Headers,
    client_ip: str,
    scheme: str,
    trusted: bool,
    rewrite_host: bytes | None = None,
    keep_upgrade: bool = False,
) -> Outgoing:
    """:func:`request_headers` in general: with a Connection header naming others."""
    named = _connection_tokens(incoming)
    out: Headers = []
    host = request_id = forwarded_for = forwarded_proto = forwarded_host = b""
    for name, value in incoming:
        if name in HOP_BY_HOP or name in _REFRAMED:
            if keep_upgrade and name in (b"upgrade", b"connection"):
                out.append((name, value))
            continue
        if name in named:
            continue
        if name == b"host":
            host = value
            continue
        if name in _CLAIMS and not trusted:
            continue
        if name in _FORWARDED:
            if trusted:
                if name == b"x-forwarded-for":
                    forwarded_for = value
                elif name == b"x-forwarded-proto":
                    forwarded_proto = value
                else:
                    forwarded_host = value
            continue
        if name == b"x-request-id":
            request_id = value
        out.append((name, value))
    return _finish(
        out, request_id, host, client_ip, scheme, rewrite_host, forwarded_for,
        forwarded_proto, forwarded_host,
    )  # fmt: skip


def response_headers(incoming: Headers, extra: Headers) -> Headers:
    """Headers to send the client for a backend response with ``incoming``."""
    out: Headers = []
    named = False
    for pair in incoming:
        name = pair[0]
        if name in HOP_BY_HOP:
            if name == b"connection" and pair[1] not in _PLAIN_CONNECTION:
                named = True
        else:
            out.append(pair)
    if named:
        tokens = _connection_tokens(incoming)
        out = [pair for pair in out if pair[0] not in tokens]
    out += extra
    return out
