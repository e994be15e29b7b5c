"""One admitted request on its way through the proxy, and what is derived from it: the
copy handed to capture and the access-log line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from gateway.http.downstream import Request, Responder
from gateway.http.exchange import Exchange
from gateway.http.upstream import UpstreamRequest, UpstreamResponse
from gateway.proxy.generation import Generation
from gateway.proxy.headers import Outgoing
from gateway.proxy.routing import Decision
from gateway.types import Headers


@dataclass(slots=True, init=False)
class Call:
    """One admitted request on its way through the attempt loop and the reply."""

    gen: Generation
    request: Request
    io: Responder
    decision: Decision
    method: str
    path: str
    query: bytes
    body: bytes
    stream: AsyncIterator[bytes] | None
    length: int | None  # the client's Content-Length, forwarded as such
    outgoing: Outgoing
    start: float

    def __init__(
        self,
        gen: Generation,
        request: Request,
        io: Responder,
        decision: Decision,
        method: str,
        path: str,
        query: bytes,
        body: bytes,
        stream: AsyncIterator[bytes] | None,
        length: int | None,
        outgoing: Outgoing,
        start: float,
    ) -> None:
        self.gen = gen
        self.request = request
        self.io = io
        self.decision = decision
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.stream = stream
        self.length = length
        self.outgoing = outgoing
        self.start = start


_METHOD_BYTES: Final = {m: m.encode() for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")}


def target_of(base_path: str, call: Call) -> bytes:
    """The request target a backend is sent (its base path, the path, the query)."""
    target = (base_path + call.path).encode("latin-1")
    return target + b"?" + call.query if call.query else target


def upstream_request(call: Call, target: bytes, headers: Headers) -> UpstreamRequest:
    """One attempt's request.  A streamed body keeps the client's Content-Length (legacy
    servers often refuse chunked request bodies); a chunked one stays chunked."""
    method = call.method
    return UpstreamRequest(
        _METHOD_BYTES.get(method) or method.encode(),
        target,
        headers,
        call.body,
        call.stream,
        method == "HEAD",
        length=call.length,
    )


def exchange_of(
    call: Call, served: str, response: UpstreamResponse, body: bytes | None
) -> Exchange:
    """What capture is told about a finished exchange."""
    headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in call.request.headers}
    return Exchange(
        route=call.decision.route.name,
        method=call.method,
        path=call.path,
        backend=served,
        status=response.status,
        request_id=call.outgoing.request_id.decode("latin-1"),
        request_headers=headers,
        request_body=call.body if call.stream is None else None,
        response_headers={n.decode("latin-1"): v.decode("latin-1") for n, v in response.headers},
        response_body=body,
        traceparent=headers.get("traceparent"),
    )


def access_log(call: Call, served: str, status: int, upstream: float, total: float) -> None:
    sys.stdout.write(
        json.dumps(
            {
                "ts": time.time(),
                "route": call.decision.route.name,
                "backend": served,
                "method": call.method,
                "path": call.path,
                "status": status,
                "upstream_ms": round(upstream * 1000, 3),
                "total_ms": round(total * 1000, 3),
                "request_id": call.outgoing.request_id.decode(),
            }
        )
        + "\n"
    )
