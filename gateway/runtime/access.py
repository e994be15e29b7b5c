"""Who may call the admin API: pure decisions on one request, no I/O.

Three checks, in order; the first that refuses answers:

1. Host: the ``Host`` header must name this admin listener (DNS rebinding).  Its own
   ``host:port``; for a loopback listener also ``localhost``, ``127.0.0.1`` and ``[::1]`` at
   that port; for a wildcard listener (``0.0.0.0``, ``::``) any IP address or ``localhost``
   at that port.  ``admin.allowed_hosts`` adds names (``host`` for any port, or
   ``host:port``).  Anything else is 403.
2. Credentials: with an admin token every call needs ``Authorization: Bearer <token>``
   (401 otherwise); without one only loopback clients are served (403).  ``/metrics`` also
   accepts the scrape-only metrics token when one is configured.
3. Cross-site requests (no admin token only, where a browser on the same machine could
   otherwise drive the API): a state-changing call must carry no ``Origin`` or this
   admin's own, and no body type other than ``application/json`` (a "simple" cross-origin
   POST is form-encoded or text/plain).  403 otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class AccessPolicy:
    """The admin listener's address and the credentials it accepts."""

    listen: tuple[str, int]
    allowed_hosts: tuple[str, ...] = ()
    token: str | None = None
    metrics_token: str | None = None


@dataclass(frozen=True)
class Call:
    """What the checks read from one request (header names in lower case)."""

    method: str
    path: str
    client: str | None
    headers: dict[bytes, list[bytes]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, method: str, path: str, client: str | None, raw: Iterable[tuple[bytes, bytes]]
    ) -> Call:
        headers: dict[bytes, list[bytes]] = {}
        for name, value in raw:
            headers.setdefault(name.lower(), []).append(value)
        return cls(method.upper(), path, client, headers)


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


def decide(policy: AccessPolicy, call: Call) -> Refusal | None:
    """None when the call may proceed, else why not."""
    return host_refusal(policy, call) or auth_refusal(policy, call) or csrf_refusal(policy, call)


# Host ------------------------------------------------------------------------------------
def split_host(text: str) -> tuple[str, int | None] | None:
    """``name``, ``name:port``, ``[v6]`` or ``[v6]:port`` → (lower-case name, port)."""
    text = text.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:  # a bare IPv6 address (only in configuration)
        name, port_text = text, None
    else:
        name, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
    if not name or (port_text is not None and not (port_text.isdigit() and len(port_text) <= 5)):
        return None
    return name.rstrip("."), int(port_text) if port_text is not None else None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _same(a: str, b: str) -> bool:
    ip_a, ip_b = _ip(a), _ip(b)
    if ip_a is not None and ip_b is not None:
        return ip_a == ip_b
    return a == b


def _listener_serves(listen: tuple[str, int], name: str, port: int) -> bool:
    host, listen_port = listen[0].strip("[]").lower(), listen[1]
    if port != listen_port:
        return False
    if host in WILDCARDS:
        return name == "localhost" or _ip(name) is not None
    ip = _ip(host)
    if host == "localhost" or (ip is not None and ip.is_loopback):
        return any(_same(name, n) for n in (host, *LOOPBACK_NAMES))
    return _same(name, host)


def host_allowed(policy: AccessPolicy, header: bytes) -> bool:
    try:
        parsed = split_host(header.decode("ascii"))
    except UnicodeDecodeError:
        return False
    if parsed is None:
        return False
    name, port = parsed
    port = 80 if port is None else port
    if _listener_serves(policy.listen, name, port):
        return True
    for entry in policy.allowed_hosts:
        allowed = split_host(entry)
        if allowed is not None and _same(name, allowed[0]) and allowed[1] in (None, port):
            return True
    return False


def host_refusal(policy: AccessPolicy, call: Call) -> Refusal | None:
    hosts = call.headers.get(b"host", [])
    if len(hosts) != 1:
        return Refusal(403, "the admin API needs exactly one Host header")
    if host_allowed(policy, hosts[0]):
        return None
    shown = hosts[0].decode("latin-1")
    return Refusal(
        403,
        f'host "{shown}" is not this admin listener '
        f"({policy.listen[0]}:{policy.listen[1]}); add it to admin.allowed_hosts",
    )


# Credentials -----------------------------------------------------------------------------
def bearer_matches(values: list[bytes], token: str) -> bool:
    """Exactly one ``Authorization: Bearer <token>`` header carrying ``token`` (any bytes)."""
    if len(values) != 1:
        return False
    scheme, _, given = values[0].strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode())


def _loopback(client: str | None) -> bool:
    ip = _ip(client) if client is not None else None
    return ip is not None and ip.is_loopback


def auth_refusal(policy: AccessPolicy, call: Call) -> Refusal | None:
    tokens = [policy.token] if policy.token else []
    if call.path == "/metrics" and policy.metrics_token:
        tokens.append(policy.metrics_token)
    given = call.headers.get(b"authorization", [])
    if any(bearer_matches(given, token) for token in tokens):
        return None
    if policy.token or (tokens and not _loopback(call.client)):
        return Refusal(401, "this call needs Authorization: Bearer <token>")
    if _loopback(call.client):
        return None
    return Refusal(403, "without admin.token_env the admin API serves loopback clients only")


# Cross-site requests ---------------------------------------------------------------------
def csrf_refusal(policy: AccessPolicy, call: Call) -> Refusal | None:
    if policy.token or call.method in SAFE_METHODS:
        return None
    host = call.headers.get(b"host", [b""])[0].decode("latin-1").lower()
    origins = call.headers.get(b"origin", [])
    own = {f"http://{host}", f"https://{host}"}
    if origins and (len(origins) > 1 or origins[0].decode("latin-1").lower() not in own):
        shown = b", ".join(origins).decode("latin-1")
        return Refusal(403, f"{call.method} from origin {shown} refused: not this admin's origin")
    types = call.headers.get(b"content-type", [])
    media = [t.split(b";", 1)[0].strip().lower() for t in types]
    if any(m != b"application/json" for m in media):
        shown = b", ".join(types).decode("latin-1")
        why = "send application/json or no body"
        return Refusal(403, f"{call.method} with Content-Type {shown} refused: {why}")
    return None
