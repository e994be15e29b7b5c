"""The Host header a backend is sent, decided once for the proxy, its fallback and the mirror.

``host_header: preserve`` (the default) forwards the client's Host; ``backend``
rewrites it to the backend's own address (omitting port 80), as a virtual-hosted
backend expects.  Pure.
"""

from __future__ import annotations

from gateway.config import Backend
from gateway.types import Headers


def host_for(backend: Backend) -> bytes | None:
    """The Host value to send to ``backend``, or None to keep the client's."""
    if backend.host_header != "backend":
        return None
    if backend.port == 80:
        return backend.host.encode()
    return f"{backend.host}:{backend.port}".encode()


def with_host(headers: Headers, rewritten: bytes | None, client_host: bytes) -> Headers:
    """``headers`` (whose last entry is Host) with the Host a backend should get."""
    host = rewritten or client_host or b"localhost"
    if headers and headers[-1][0] == b"host":
        if headers[-1][1] == host:
            return headers
        return [*headers[:-1], (b"host", host)]
    return [*headers, (b"host", host)]


__all__ = ["host_for", "with_host"]
