"""The proxy: routes, forwards and streams one request.

It answers through :class:`~gateway.downstream.Responder`, so the same code is served
below ASGI by :mod:`gateway.protocol` (the hot path) and as an ASGI app.
It does I/O only.  :mod:`gateway.routing` decides the route and backend,
:mod:`gateway.headers` rewrites headers, :mod:`gateway.upstream` carries the
exchange, and :mod:`gateway.retry` says whether a failed attempt is tried again.
A :class:`Generation` holds everything derived from one configuration; a reload
swaps it, and requests in flight finish on the one they started with.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from gateway.capture import CompiledRule, Exchange, compile_rules, find_rule
from gateway.config import Backend, Config
from gateway.downstream import (
    AsgiResponder,
    ClientGone,
    Receive,
    Request,
    Responder,
    Scope,
    Send,
    request_from_scope,
)
from gateway.headers import Outgoing, TrustedProxies, request_headers, response_headers
from gateway.metrics import GatewayMetrics
from gateway.outlier import Outliers
from gateway.paths import PathError, normalise
from gateway.recorder import Recorder, Ticket
from gateway.retry import FALLBACK_STATUSES, Attempt, next_step
from gateway.routing import Decision, Facts, Refused, Table
from gateway.upstream import (
    Transport,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
)
from shadow.mirror import Lane, Mirror, Sample

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass
class Generation:
    """Everything derived from one configuration."""

    config: Config
    table: Table = field(init=False)
    trusted: TrustedProxies = field(init=False)
    route_header: bytes = field(init=False)
    backend_header: bytes = field(init=False)
    capture_rules: dict[str, tuple[CompiledRule, ...]] = field(init=False)
    #: the Host header sent to each backend that rewrites it (``host_header: backend``)
    host_for: dict[str, bytes | None] = field(init=False)

    def __post_init__(self) -> None:
        self.table = Table(self.config)
        self.trusted = TrustedProxies(self.config.proxy.trusted_proxies)
        self.route_header = self.config.proxy.route_header.lower().encode()
        self.backend_header = self.config.proxy.backend_header.lower().encode()
        self.capture_rules = {r.name: compile_rules(r.capture) for r in self.config.routes}
        self.host_for = {n: _host_for(b) for n, b in self.config.backends.items()}


def _json_error(
    status: int, error: str, **fields: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": error, **fields}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return status, headers, body


class Proxy:
    """The gateway's application for proxied traffic.

    :meth:`handle` serves one request over a :class:`~gateway.downstream.Responder`
    (the hot path, called by :mod:`gateway.protocol`); the instance is also an ASGI
    application, for WebSocket upgrades, lifespan, and any ASGI server.
    """

    def __init__(
        self,
        generation: Generation,
        transport: Transport,
        metrics: GatewayMetrics | None = None,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        recorder: Recorder | None = None,
    ) -> None:
        self.generation = generation
        self.transport = transport
        self.metrics = metrics or GatewayMetrics()
        self.draw = draw
        self.clock = clock
        self.outliers = Outliers(
            {n: b.outlier for n, b in generation.config.backends.items()}, clock
        )
        self.recorder = recorder
        self.mirror: Mirror | None = None
        self.websocket: Callable[[Generation, Scope, Receive, Send], Awaitable[None]] | None = None
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []

    def swap(self, generation: Generation) -> None:
        """Serve new requests from ``generation``; requests in flight keep the old one."""
        self.outliers.reconfigure({n: b.outlier for n, b in generation.config.backends.items()})
        if self.mirror is not None:
            self.mirror.reconfigure(generation.config.backends)
        self.generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(request_from_scope(scope), AsgiResponder(receive, send))
        elif kind == "websocket":
            if self.websocket is None:
                await send({"type": "websocket.close", "code": 1011})
                return
            await self.websocket(self.generation, scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    for hook in self.on_startup:
                        await hook()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    for hook in self.on_shutdown:
                        await hook()
                    await self.transport.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _refuse(self, io: Responder, status: int, reason: str, metric: str) -> None:
        self.metrics.refused.inc((metric,))
        await io.respond(*_json_error(status, reason))

    async def handle(self, request: Request, io: Responder) -> None:
        """Serve one HTTP request."""
        gen = self.generation
        method = request.method
        if request.overflow:
            return await self._refuse(io, 431, "request headers too large", "headers")
        if method == "CONNECT":
            return await self._refuse(io, 405, "CONNECT is not supported", "connect")
        if not request.target.startswith(b"/"):
            return await self._refuse(
                io, 400, "absolute-form or authority-form request target refused", "absolute-form"
            )
        raw_path = request.path
        table = gen.table
        wanted = table.wanted_header_bytes
        picked: dict[str, str] = {}
        cookie = content_length = None
        chunked = False
        for name, value in request.headers:
            if name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"cookie":
                cookie = value
            if name in wanted:
                picked[name.decode("latin-1")] = value.decode("latin-1")
        try:
            path = normalise(raw_path)
        except PathError as exc:
            return await self._refuse(io, 400, str(exc), "path")
        query_string = request.query
        query = (
            dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
            if table.needs_query and query_string
            else {}
        )
        cookies: dict[str, str] = {}
        new_user = None
        if table.wanted_cookies:
            if cookie is not None:
                cookies = _parse_cookies(cookie.decode("latin-1"))
            new_user = _new_user_id()
        facts = Facts(method, path, picked, query, cookies)
        try:
            decision = table.decide(facts, self.draw(), raw_path, self.outliers.ejected(), new_user)
        except Refused as exc:
            return await self._refuse(io, exc.status, exc.reason, "path")
        if decision is None:
            return await self._refuse(io, 404, "no route matches", "no-route")
        route = decision.route
        if decision.override_ignored:
            self.metrics.override_ignored.inc((route.name,))
        limit = (
            route.max_body_bytes
            if route.max_body_bytes is not None
            else gen.config.proxy.max_body_bytes
        )
        if content_length is not None:
            try:
                length = int(content_length)
            except ValueError:
                return await self._refuse(io, 400, "invalid Content-Length", "framing")
            if length > limit:
                return await self._refuse(io, 413, "request body too large", "body-size")
        keep = gen.config.proxy.replay_buffer_bytes
        captured = None
        if route.capture and self.recorder is not None:
            captured = find_rule(gen.capture_rules[route.name], method, path, None)
            if captured is not None:
                if self.recorder.rejecting():
                    return await self._refuse(
                        io, 503, "outbox unavailable: captured writes are refused", "outbox"
                    )
                keep = max(keep, self.recorder.max_body_bytes)
        body = b""
        stream: AsyncIterator[bytes] | None = None
        try:
            if chunked or (content_length is not None and content_length != b"0"):
                body, stream = await _read_body(io, keep, limit, gen.config.proxy.client_timeout)
            await self._forward(
                gen, request, io, decision, method, path, query_string, body, stream, captured
            )
        except _BodyTooLarge:
            await self._refuse(io, 413, "request body too large", "body-size")
        except _ClientTooSlow:
            await self._refuse(io, 408, "request body not received in time", "slow-client")
        except ClientGone:
            self.metrics.refused.inc(("client-gone",))

    async def _forward(
        self,
        gen: Generation,
        request: Request,
        io: Responder,
        decision: Decision,
        method: str,
        path: str,
        query_string: bytes,
        body: bytes,
        stream: AsyncIterator[bytes] | None,
        captured: tuple[CompiledRule, dict[str, str]] | None = None,
    ) -> None:
        metrics = self.metrics
        route = decision.route
        client_ip = request.client
        backend_name = decision.backend
        backend = gen.config.backends[backend_name]
        outgoing = request_headers(
            request.headers,
            client_ip,
            request.scheme,
            client_ip in gen.trusted,
            gen.host_for[backend_name],
        )
        target = (backend.base_path + path).encode("latin-1")
        if query_string:
            target += b"?" + query_string
        start = self.clock()
        budget = route.timeout or backend.request_timeout
        deadline = start + budget
        attempt = Attempt(
            backend=backend_name, fallback=decision.fallback, retries_left=route.retries.attempts
        )
        ticket: Ticket | None = None
        if captured is not None and self.recorder is not None:
            ticket = self.recorder.begin(
                outgoing.request_id.decode("latin-1"), route.name, method, path, *captured
            )
        metrics.in_flight.inc()
        response: UpstreamResponse | None = None
        try:
            while True:
                backend = gen.config.backends[attempt.backend]
                if attempt.backend != backend_name:  # a fallback: its own Host rule
                    host = gen.host_for[attempt.backend] or outgoing.host or b"localhost"
                    outgoing.headers[-1] = (b"host", host)
                remaining = deadline - self.clock()
                per_try = route.retries.per_try_timeout or remaining
                upstream_request = UpstreamRequest(
                    method.encode(), target, outgoing.headers, body, stream, method == "HEAD"
                )
                error: UpstreamError | None = None
                response = None
                if remaining <= 0:
                    error = UpstreamTimeout("route timeout exhausted")
                else:
                    try:
                        response = await self.transport.send(
                            backend.host,
                            backend.port,
                            upstream_request,
                            backend.connect_timeout,
                            min(per_try, remaining),
                            backend.pool_size,
                        )
                    except UpstreamError as exc:
                        error = exc
                if error is not None:
                    metrics.upstream_errors.inc((attempt.backend, error.kind))
                    self._failed(attempt.backend)
                elif response is not None and response.status in FALLBACK_STATUSES:
                    self._failed(attempt.backend)
                else:
                    self.outliers.success(attempt.backend)
                    if response is not None and response.status < 500:
                        break  # the common case: nothing to retry
                step = next_step(
                    attempt,
                    route.retries,
                    error,
                    response.status if response is not None else None,
                    idempotent=method in IDEMPOTENT,
                    replayable=stream is None,
                )
                if step is None:
                    break
                if response is not None:
                    response.close()
                    response = None
                if step.backend != attempt.backend:
                    metrics.fallbacks.inc((route.name, attempt.backend, step.backend))
                else:
                    metrics.retries.inc((route.name, attempt.backend))
                attempt = step
            elapsed = self.clock() - start
            served = attempt.backend
            extra: list[tuple[bytes, bytes]] = [(b"x-request-id", outgoing.request_id)]
            if gen.config.proxy.response_headers:
                extra += [
                    (gen.route_header, route.name.encode()),
                    (gen.backend_header, served.encode()),
                ]
            if decision.set_cookie is not None:
                name, value = decision.set_cookie
                extra.append(
                    (
                        b"set-cookie",
                        f"{name}={value}; {_COOKIE_ATTRIBUTES}".encode(),
                    )
                )
            if response is None:
                assert error is not None
                if ticket is not None:
                    # Unsent: nothing happened.  Otherwise the monolith may have done it.
                    reason = "" if error.unsent else f"no answer from {served}: {error.kind}"
                    await self._record(ticket, None, reason)
                status = 504 if isinstance(error, UpstreamTimeout) else 502
                status, headers, payload = _json_error(
                    status, f"upstream {error.kind}: {error}", route=route.name, backend=served
                )
                await io.respond(status, headers + extra, payload)
            else:
                status = response.status
                whole = response.complete_body()
                lane = (
                    self.mirror.lane(route, method, path, served, stream is None)
                    if route.shadow is not None and self.mirror is not None
                    else None
                )
                if ticket is not None and whole is not None:
                    # Stored before the client hears back: a client's next write comes after.
                    await self._record_exchange(
                        ticket, request, route.name, served, outgoing, body, stream, response, whole
                    )
                    ticket = None
                headers = response_headers(response.headers, extra)
                copy: bytes | None = None
                if whole is not None:  # small responses arrive with their head: one write
                    await io.respond(status, headers, whole)
                    copy = whole
                else:
                    await io.start(status, headers)
                    limit = self._capture_limit() if ticket is not None else -1
                    if lane is not None:
                        limit = max(limit, lane.shadow.max_body_bytes)
                    kept: list[bytes] | None = [] if limit >= 0 else None
                    size = 0
                    try:
                        async for chunk in response.chunks():
                            if kept is not None:
                                size += len(chunk)
                                kept = kept if size <= limit else None
                                if kept is not None:
                                    kept.append(chunk)
                            await io.write(chunk)
                    except UpstreamError as exc:
                        # Too late for an error page: the server cuts the client off.
                        metrics.upstream_errors.inc((served, exc.kind))
                        raise
                    await io.end()
                    copy = b"".join(kept) if kept is not None else None
                    if ticket is not None:
                        captured_body = copy if size <= self._capture_limit() else None
                        await self._record_exchange(
                            ticket,
                            request,
                            route.name,
                            served,
                            outgoing,
                            body,
                            stream,
                            response,
                            captured_body,
                        )
                        ticket = None
                if lane is not None:
                    self._mirror(
                        lane,
                        method,
                        path,
                        query_string,
                        outgoing,
                        body,
                        served,
                        response,
                        copy,
                        elapsed,
                    )
            metrics.requests.inc((route.name, served, _STATUS_CLASS[status // 100]))
            metrics.latency.observe((route.name, served), elapsed)
            if gen.config.proxy.access_log:
                _access_log(
                    route.name,
                    served,
                    method,
                    path,
                    status,
                    elapsed,
                    self.clock() - start,
                    outgoing.request_id,
                )
        finally:
            metrics.in_flight.dec()
            if response is not None:
                response.close()
            if ticket is not None and self.recorder is not None:
                # Cut short (client gone, ...) after forwarding: the outcome is unknown.
                self.recorder.abandon(ticket)

    def _mirror(
        self,
        lane: Lane,
        method: str,
        path: str,
        query_string: bytes,
        outgoing: Outgoing,
        body: bytes,
        served: str,
        response: UpstreamResponse,
        copy: bytes | None,
        elapsed: float,
    ) -> None:
        assert self.mirror is not None
        if copy is None or len(copy) > lane.shadow.max_body_bytes:
            self.mirror.skip(lane, method, path, "too-large")
            return
        target = path.encode("latin-1")
        if query_string:
            target += b"?" + query_string
        self.mirror.submit(
            lane,
            Sample(
                route=lane.route,
                method=method,
                path=path,
                target=target,
                headers=outgoing.headers,
                body=body,
                served=served,
                status=response.status,
                response_headers=response.headers,
                response_body=copy,
                seconds=elapsed,
                request_id=outgoing.request_id.decode("latin-1"),
                at=time.time(),
            ),
        )

    def _capture_limit(self) -> int:
        return self.recorder.max_body_bytes if self.recorder is not None else 0

    async def _record(self, ticket: Ticket, exchange: Exchange | None, reason: str = "") -> None:
        assert self.recorder is not None
        await self.recorder.finish(ticket, exchange, reason)

    async def _record_exchange(
        self,
        ticket: Ticket,
        request: Request,
        route: str,
        served: str,
        outgoing: Outgoing,
        body: bytes,
        stream: AsyncIterator[bytes] | None,
        response: UpstreamResponse,
        response_body: bytes | None,
    ) -> None:
        """Finish a captured write with what was exchanged (None when the backend that
        served it is not one the capture rule covers)."""
        exchange = None
        if served in ticket.rule.rule.backends:
            headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers}
            exchange = Exchange(
                route=route,
                method=request.method,
                path=ticket.path,
                backend=served,
                status=response.status,
                request_id=outgoing.request_id.decode("latin-1"),
                request_headers=headers,
                request_body=body if stream is None else None,
                response_headers={
                    n.decode("latin-1"): v.decode("latin-1") for n, v in response.headers
                },
                response_body=response_body,
                traceparent=headers.get("traceparent"),
            )
        await self._record(ticket, exchange)

    def _failed(self, backend: str) -> None:
        if self.outliers.failure(backend):
            self.metrics.ejections.inc((backend,))


_COOKIE_ATTRIBUTES = "Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def _host_for(backend: Backend) -> bytes | None:
    if backend.host_header != "backend":
        return None
    default = backend.port == 80
    return (backend.host if default else f"{backend.host}:{backend.port}").encode()


def _new_user_id() -> str:
    return random.getrandbits(96).to_bytes(12, "big").hex()


def _parse_cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out


async def _chunks(io: Responder, limit: int, timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives, enforcing the size limit and the read deadline."""
    total = 0
    more = True
    while more:
        try:
            chunk, more = await asyncio.wait_for(io.read(), timeout)
        except TimeoutError:
            raise _ClientTooSlow from None
        total += len(chunk)
        if total > limit:
            raise _BodyTooLarge
        yield chunk


async def _read_body(
    io: Responder, keep: int, limit: int, timeout: float
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Read the body up to ``keep`` bytes; return it whole, or its start plus a stream.
    Each read must arrive within ``timeout`` (slow clients are cut off with 408)."""
    chunks = _chunks(io, limit, timeout)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > keep:
            return b"", _prepend(b"".join(parts), chunks)
    return b"".join(parts), None


async def _prepend(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk


class _ClientTooSlow(Exception):
    """The client took longer than ``proxy.client_timeout`` to send its body."""


class _BodyTooLarge(Exception):
    """The request body grew past the route's limit."""


def _access_log(
    route: str,
    backend: str,
    method: str,
    path: str,
    status: int,
    upstream: float,
    total: float,
    request_id: bytes,
) -> None:
    sys.stdout.write(
        json.dumps(
            {
                "ts": time.time(),
                "route": route,
                "backend": backend,
                "method": method,
                "path": path,
                "status": status,
                "upstream_ms": round(upstream * 1000, 3),
                "total_ms": round(total * 1000, 3),
                "request_id": request_id.decode(),
            }
        )
        + "\n"
    )
