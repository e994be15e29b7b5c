"""Records of one served HTTP exchange, handed by the proxy to the ports that want a copy.

The proxy builds them after the client has its answer (or just before, for capture)
and hands them over through the small interfaces in :mod:`gateway.proxy.ports`;
:mod:`shadow.mirror` and :mod:`gateway.capture` consume them.  They live here, below
all three, so that neither consumer imports the proxy and the proxy imports neither.

* :class:`Sample` is what the mirror needs: raw bytes, decoded later in the background.
* :class:`Exchange` is what write capture needs: plain strings for the pure capture rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.types import Headers


@dataclass(slots=True, init=False)
class Sample:
    """A mirrored request and the primary's answer, as kept on the hot path (raw bytes;
    decoded in the background)."""

    route: str
    method: str
    path: str
    target: bytes  # path and query, without any backend's base path
    headers: Headers  # as sent to the primary, Host last
    body: bytes
    served: str
    status: int
    response_headers: Headers
    response_body: bytes
    seconds: float
    request_id: str
    at: float

    def __init__(
        self,
        route: str,
        method: str,
        path: str,
        target: bytes,
        headers: Headers,
        body: bytes,
        served: str,
        status: int,
        response_headers: Headers,
        response_body: bytes,
        seconds: float,
        request_id: str,
        at: float,
    ) -> None:
        self.route = route
        self.method = method
        self.path = path
        self.target = target
        self.headers = headers
        self.body = body
        self.served = served
        self.status = status
        self.response_headers = response_headers
        self.response_body = response_body
        self.seconds = seconds
        self.request_id = request_id
        self.at = at


@dataclass(slots=True, init=False)
class Exchange:
    """What capture needs to know about one finished request (plain values)."""

    route: str
    method: str
    path: str
    backend: str
    status: int
    request_id: str
    request_headers: Mapping[str, str]
    request_body: bytes | None  # None: larger than the capture limit
    response_headers: Mapping[str, str]
    response_body: bytes | None
    traceparent: str | None = None

    def __init__(
        self,
        route: str,
        method: str,
        path: str,
        backend: str,
        status: int,
        request_id: str,
        request_headers: Mapping[str, str],
        request_body: bytes | None,
        response_headers: Mapping[str, str],
        response_body: bytes | None,
        traceparent: str | None = None,
    ) -> None:
        self.route = route
        self.method = method
        self.path = path
        self.backend = backend
        self.status = status
        self.request_id = request_id
        self.request_headers = request_headers
        self.request_body = request_body
        self.response_headers = response_headers
        self.response_body = response_body
        self.traceparent = traceparent


__all__ = ["Exchange", "Sample"]
