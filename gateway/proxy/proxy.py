"""The proxy: routes, forwards and streams one request.

It answers through :class:`~gateway.http.downstream.Responder`, so the same code is
served below ASGI by :mod:`gateway.http.server` (the hot path) and as an ASGI app.
It does I/O only.  :mod:`gateway.proxy.routing` decides the route and backend,
:mod:`gateway.proxy.headers` rewrites headers, :mod:`gateway.http.upstream` carries
the exchange, and :mod:`gateway.proxy.retry` says whether a failed attempt is tried
again.  Copies for the shadow mirror and for write capture go out through the ports
in :mod:`gateway.proxy.ports`, which the worker hands to the constructor.

One request passes three stages: admission (:meth:`Proxy.handle`: refusals, routing,
the body), the attempt loop (:meth:`Proxy._attempts`: retries and fallback), and the
reply (:meth:`Proxy._reply`: the client's answer, then the copies).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

from gateway.http.downstream import (
    AsgiResponder,
    ClientGone,
    Receive,
    Request,
    Responder,
    Scope,
    Send,
    request_from_scope,
)
from gateway.http.exchange import Sample
from gateway.http.host import with_host
from gateway.http.upstream import (
    DeadlineSpent,
    Transport,
    UpstreamError,
    UpstreamResponse,
)
from gateway.metrics.registry import GatewayMetrics
from gateway.proxy.admission import Refusal, admit, json_error
from gateway.proxy.body import BodyTooLarge, ClientTooSlow, read_body
from gateway.proxy.call import Call, access_log, exchange_of, target_of, upstream_request
from gateway.proxy.generation import Generation
from gateway.proxy.headers import request_headers, response_headers
from gateway.proxy.markers import unmarked_request
from gateway.proxy.outlier import Outliers
from gateway.proxy.ports import Capture, CaptureTicket, Hook, Mirror, MirrorLane, WebSocketRelay
from gateway.proxy.retry import FALLBACK_STATUSES, Attempt, next_step
from gateway.types import Headers

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_COOKIE_ATTRIBUTES: Final = "Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
_STATUS_CLASS: Final = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class Proxy:
    """The gateway's application for proxied traffic.

    :meth:`handle` serves one request over a :class:`~gateway.http.downstream.Responder`
    (the hot path, called by :mod:`gateway.http.server`); the instance is also an ASGI
    application, for WebSocket upgrades, lifespan, and any ASGI server::

        proxy = Proxy(Generation(config), PooledTransport(), mirror=..., capture=...)
    """

    def __init__(
        self,
        generation: Generation,
        transport: Transport,
        metrics: GatewayMetrics | None = None,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        *,
        capture: Capture | None = None,
        mirror: Mirror | None = None,
        websocket: WebSocketRelay | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
    ) -> None:
        self.generation = generation
        self.transport = transport
        self.metrics = metrics or GatewayMetrics()
        self.draw = draw
        self.clock = clock
        self.outliers = Outliers(
            {n: b.outlier for n, b in generation.config.backends.items()},
            clock,
            lambda backend: self.metrics.ejections.inc((backend,)),
        )
        self.capture = capture
        self.mirror = mirror
        self.websocket = websocket
        self.on_startup = tuple(on_startup)
        self.on_shutdown = tuple(on_shutdown)

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
            await self.websocket(self.generation, scope, receive, send, self.outliers)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
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
        await io.respond(*json_error(status, reason))

    # -- admission -----------------------------------------------------------------------

    async def handle(self, request: Request, io: Responder) -> None:
        """Serve one HTTP request: refuse what must be refused, route, read the body,
        then forward.

        It is in flight (``strangler_in_flight_requests``) from before it reads the
        generation: once a reload has swapped it, a moment with nothing in flight means
        no request is left on the old routes -- also none still receiving its body, which
        a count taken only around forwarding missed (a write could then reach the old
        writer after a cut-over had waited for "nothing in flight")."""
        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            await self._serve(self.generation, request, io)
        finally:
            in_flight.dec()

    async def _serve(self, gen: Generation, request: Request, io: Responder) -> None:
        if request.marked:  # a client's copy of the gateway's own markers goes first
            request = unmarked_request(request, gen.origin_token)
        try:
            admitted = admit(gen, request, self.draw(), self.outliers.ejected())
        except Refusal as refusal:
            return await self._refuse(io, refusal.status, refusal.reason, refusal.metric)
        decision = admitted.decision
        route = decision.route
        if decision.override_ignored:
            self.metrics.override_ignored.inc((route.name,))
        keep = gen.config.proxy.replay_buffer_bytes
        capture = self.capture if route.capture else None
        if capture is not None and capture.wants(route, request.method, admitted.path):
            if capture.rejecting():
                return await self._refuse(
                    io, 503, "outbox unavailable: captured writes are refused", "outbox"
                )
            keep = max(keep, capture.max_body_bytes)
        body = b""
        stream: AsyncIterator[bytes] | None = None
        # The route's timeout counts from here: receiving the body, waiting for a pooled
        # connection and the backend's answer all fit in it (as the rendered Istio route).
        start = self.clock()
        budget = route.timeout or gen.config.backends[decision.backend].request_timeout
        try:
            if admitted.has_body:
                try:
                    async with asyncio.timeout(budget):
                        body, stream = await read_body(
                            io, keep, admitted.limit, gen.config.proxy.client_timeout
                        )
                except TimeoutError:
                    raise ClientTooSlow from None
            outgoing = request_headers(
                request.headers,
                request.client,
                request.scheme,
                request.client in gen.trusted,
                gen.host_for[decision.backend],
            )
            call = Call(
                gen, request, io, decision, request.method, admitted.path, request.query, body,
                stream, None if admitted.chunked else admitted.length, outgoing, start,
            )  # fmt: skip
            await self._forward(call)
        except BodyTooLarge:
            await self._refuse(io, 413, "request body too large", "body-size")
        except ClientTooSlow:
            await self._refuse(io, 408, "request body not received in time", "slow-client")
        except ClientGone:
            self.metrics.refused.inc(("client-gone",))

    async def _forward(self, call: Call) -> None:
        route = call.decision.route
        ticket: CaptureTicket | None = None
        if route.capture and self.capture is not None:
            request_id = call.outgoing.request_id.decode("latin-1")
            ticket = self.capture.begin(route, call.method, call.path, request_id)
        metrics = self.metrics
        response: UpstreamResponse | None = None
        try:
            response, error, served = await self._attempts(call)
            elapsed = self.clock() - call.start
            if response is None:
                assert error is not None
                status = await self._fail(call, error, served, ticket)
            else:
                status = response.status
                await self._reply(call, response, served, elapsed, ticket)
            ticket = None
            metrics.requests.inc((route.name, served, _STATUS_CLASS[status // 100]))
            metrics.latency.observe((route.name, served), elapsed)
            if call.gen.config.proxy.access_log:
                access_log(call, served, status, elapsed, self.clock() - call.start)
        finally:
            if response is not None:
                response.close()
            if ticket is not None:
                # Cut short (client gone, ...) after forwarding: the outcome is unknown.
                ticket.abandon()

    # -- the attempt loop ----------------------------------------------------------------

    async def _attempts(
        self, call: Call
    ) -> tuple[UpstreamResponse | None, UpstreamError | None, str]:
        """Send the request, retrying and falling back as the route says.  Returns the
        response (None when every attempt failed), the last error, and the backend that
        served (or failed) last."""
        gen, route, metrics = call.gen, call.decision.route, self.metrics
        first = call.decision.backend
        target = target_of(gen.config.backends[first].base_path, call)
        deadline = call.start + (route.timeout or gen.config.backends[first].request_timeout)
        attempt = Attempt(
            backend=first, fallback=call.decision.fallback, retries_left=route.retries.attempts
        )
        headers = call.outgoing.headers
        while True:
            backend = gen.config.backends[attempt.backend]
            if attempt.backend != first:  # a fallback: its own Host rule
                headers = with_host(headers, gen.host_for[attempt.backend], call.outgoing.host)
            response: UpstreamResponse | None = None
            error: UpstreamError | None = None
            remaining = deadline - self.clock()
            if remaining <= 0:  # no backend is asked, so none is counted
                error = DeadlineSpent("route timeout exhausted")
            else:
                try:
                    response = await self.transport.send(
                        backend.host,
                        backend.port,
                        upstream_request(call, target, headers),
                        backend.connect_timeout,
                        min(route.retries.per_try_timeout or remaining, remaining),
                        backend.pool_size,
                        backend.max_pending,
                    )
                except UpstreamError as exc:
                    error = exc
                if self._answered(attempt.backend, response, error):
                    return response, None, attempt.backend  # the common case
            step = next_step(
                attempt,
                route.retries,
                error,
                response.status if response is not None else None,
                idempotent=call.method in IDEMPOTENT,
                replayable=call.stream is None,
            )
            if step is None:
                return response, error, attempt.backend
            if response is not None:
                response.close()
            if step.backend != attempt.backend:
                metrics.fallbacks.inc((route.name, attempt.backend, step.backend))
            else:
                metrics.retries.inc((route.name, attempt.backend))
            attempt = step

    def _answered(
        self, backend: str, response: UpstreamResponse | None, error: UpstreamError | None
    ) -> bool:
        """Count an attempt's outcome; True when its response is the answer."""
        if error is not None:
            self.metrics.upstream_errors.inc((backend, error.kind))
            if error.backend_fault:
                self.outliers.counted(backend, False)
        elif response is not None and response.status in FALLBACK_STATUSES:
            self.outliers.counted(backend, False)
        else:
            self.outliers.success(backend)
            return response is not None and response.status < 500
        return False

    # -- the reply -----------------------------------------------------------------------

    def _extra(self, call: Call, served: str) -> Headers:
        """Headers the gateway adds to every response."""
        gen = call.gen
        if gen.config.proxy.response_headers:
            names = gen.name_bytes
            extra: Headers = [
                (b"x-request-id", call.outgoing.request_id),
                (gen.route_header, names[call.decision.route.name]),
                (gen.backend_header, names.get(served) or served.encode()),
            ]
        else:
            extra = [(b"x-request-id", call.outgoing.request_id)]
        if call.decision.set_cookie is not None:
            name, value = call.decision.set_cookie
            extra.append((b"set-cookie", f"{name}={value}; {_COOKIE_ATTRIBUTES}".encode()))
        return extra

    async def _fail(
        self, call: Call, error: UpstreamError, served: str, ticket: CaptureTicket | None
    ) -> int:
        """Answer for a request no backend answered: 504 on a timeout, 503 when the backend's
        queue is full, else 502."""
        if ticket is not None:
            # Unsent: nothing happened.  Otherwise the monolith may have done it.
            await ticket.finish(
                None, "" if error.unsent else f"no answer from {served}: {error.kind}"
            )
        status = {"timeout": 504, "overflow": 503}.get(error.kind, 502)
        status, headers, payload = json_error(
            status,
            f"upstream {error.kind}: {error}",
            route=call.decision.route.name,
            backend=served,
        )
        await call.io.respond(status, headers + self._extra(call, served), payload)
        return status

    async def _reply(
        self,
        call: Call,
        response: UpstreamResponse,
        served: str,
        elapsed: float,
        ticket: CaptureTicket | None,
    ) -> None:
        """Relay the backend's answer; then hand copies to capture and the mirror."""
        route = call.decision.route
        lane = (
            self.mirror.lane(route, call.method, call.path, served, call.stream is None)
            if route.shadow is not None and self.mirror is not None
            else None
        )
        headers = response_headers(response.headers, self._extra(call, served))
        whole = response.complete_body()
        if whole is not None:  # small responses arrive with their head: one write
            if ticket is not None:
                # Stored before the client hears back: a client's next write comes after.
                await ticket.finish(exchange_of(call, served, response, whole))
            await call.io.respond(response.status, headers, whole)
            copy: bytes | None = whole
        else:
            capture_limit = self.capture.max_body_bytes if ticket and self.capture else -1
            copy = await self._stream(call, response, served, headers, lane, capture_limit)
            if ticket is not None:
                kept = copy if copy is not None and len(copy) <= capture_limit else None
                await ticket.finish(exchange_of(call, served, response, kept))
        if lane is not None:
            self._mirror(call, lane, served, response, copy, elapsed)

    async def _stream(
        self,
        call: Call,
        response: UpstreamResponse,
        served: str,
        headers: Headers,
        lane: MirrorLane | None,
        limit: int,
    ) -> bytes | None:
        """Stream the body to the client, keeping a copy of up to ``limit`` bytes (or the
        mirror's limit); None when nothing was kept or the body was larger."""
        io = call.io
        await io.start(response.status, headers)
        if lane is not None:
            limit = max(limit, lane.max_body_bytes)
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
            self.metrics.upstream_errors.inc((served, exc.kind))
            raise
        await io.end()
        return b"".join(kept) if kept is not None else None

    def _mirror(
        self,
        call: Call,
        lane: MirrorLane,
        served: str,
        response: UpstreamResponse,
        copy: bytes | None,
        elapsed: float,
    ) -> None:
        if copy is None or len(copy) > lane.max_body_bytes:
            lane.skip(call.method, call.path, "too-large")
            return
        target = call.path.encode("latin-1")
        if call.query:
            target += b"?" + call.query
        lane.submit(
            Sample(
                route=call.decision.route.name,
                method=call.method,
                path=call.path,
                target=target,
                headers=call.outgoing.headers,
                body=call.body,
                served=served,
                status=response.status,
                response_headers=response.headers,
                response_body=copy,
                seconds=elapsed,
                request_id=call.outgoing.request_id.decode("latin-1"),
                at=time.time(),
            )
        )
