"""The admin API on its own listener (Starlette: only this module and its dashboard import it).

``/healthz``, ``/readyz``, ``/metrics`` (Prometheus text), ``/admin/config``,
``/admin/routes`` (weights and live counts), ``POST /admin/reload`` and the rollouts:
``GET /admin/rollout[/{route}]`` and
``POST /admin/rollout/{route}/start|pause|resume|approve|abort``; the dashboard: its page
at ``/`` (:mod:`gateway.runtime.dashboard`: no data in it, it asks for the token itself)
and ``/admin/stats``, which it polls (live weights, per backend figures from
:mod:`gateway.runtime.stats`, the rollouts, and, when configured, per endpoint shadow
match rates and the outbox's backlog with the relay's state).  Every API request passes
:func:`gateway.runtime.access.decide` first (Host header, token or loopback client,
cross-site rule); the page's own files need only the Host check.  ``/admin/config`` shows
the configuration with its credentials masked (:mod:`gateway.runtime.redact`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.capture.outbox import OutboxError, OutboxStore
from gateway.config import Config
from gateway.metrics.registry import render
from gateway.rollout.driver import ACTIONS, Driver, UnknownRollout
from gateway.rollout.machine import InvalidTransition
from gateway.rollout.store import StoreError
from gateway.rollout.weights import with_weights
from gateway.runtime.access import AccessPolicy, Call, decide, host_refusal
from gateway.runtime.dashboard import PAGE_FILES, page_endpoints
from gateway.runtime.redact import redact
from gateway.runtime.stats import (
    SHADOW_SPAN,
    Window,
    backend_stats,
    outbox_stats,
    sample,
    shadow_stats,
)
from shadow.store import ResultStore
from shadow.store import StoreError as ShadowStoreError


@dataclass
class AdminHooks:
    """What the admin API needs from the process that runs it."""

    config: Callable[[], Config]
    snapshot: Callable[[], dict[str, Any]]  # merged metrics
    reload: Callable[[], tuple[bool, list[str]]]
    ready: Callable[[], bool]
    policy: AccessPolicy
    on_start: Callable[[], Awaitable[None]] | None = None
    rollout: Driver | None = None
    shadow: ResultStore | None = None  # read for the dashboard's shadow panel
    outbox: OutboxStore | None = None  # read for the dashboard's outbox panel


class _Guard:
    """:func:`~gateway.runtime.access.decide` in front of every admin endpoint."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            call = Call.of(
                scope["method"], scope["path"], client[0] if client else None, scope["headers"]
            )
            page = scope["method"] in ("GET", "HEAD") and scope["path"] in PAGE_FILES
            refusal = host_refusal(self.policy, call) if page else decide(self.policy, call)
            if refusal is not None:
                headers = {"www-authenticate": "Bearer"} if refusal.status == 401 else None
                response = JSONResponse(
                    {"error": refusal.error}, status_code=refusal.status, headers=headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def effective(config: Config) -> dict[str, Any]:
    """The configuration as ``/admin/config`` shows it: defaults filled, credentials masked."""
    shown: dict[str, Any] = redact(config.raw)
    return shown


def _routes(config: Config, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], float] = {}
    requests = snapshot.get("strangler_requests_total", {"values": []})
    for (route, backend, _status), value in requests["values"]:
        counts[(route, backend)] = counts.get((route, backend), 0) + value
    out = []
    for route in config.routes:
        total = sum(w for _, w in route.split)
        out.append(
            {
                "name": route.name,
                "match": {
                    "kind": route.match.kind,
                    "path": route.match.path,
                    "methods": sorted(route.match.methods) if route.match.methods else None,
                },
                "fallback": route.fallback,
                "sticky": route.sticky_header or route.sticky_cookie,
                "backends": [
                    {
                        "backend": name,
                        "weight": weight,
                        "share": round(weight / total, 4) if total else 0,
                        "requests": int(counts.get((route.name, name), 0)),
                    }
                    for name, weight in route.split
                ],
            }
        )
    return out


def _rollout_endpoints(
    driver: Driver | None,
) -> list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]]:
    async def guarded(work: Callable[[], Awaitable[Any]]) -> Response:
        if driver is None:
            return JSONResponse({"error": "no route has a rollout: block"}, status_code=404)
        try:
            return JSONResponse(await work())
        except UnknownRollout as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except InvalidTransition as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except StoreError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)

    async def every(request: Request) -> Response:
        return await guarded(lambda: _status(driver, None))

    async def one(request: Request) -> Response:
        return await guarded(lambda: _status(driver, request.path_params["route"]))

    async def act(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            known = ", ".join(ACTIONS)
            return JSONResponse(
                {"error": f"unknown rollout action '{action}' (known: {known})"}, status_code=404
            )
        return await guarded(lambda: _act(driver, request.path_params["route"], action))

    return [
        ("/admin/rollout", every, ["GET"]),
        ("/admin/rollout/{route}", one, ["GET"]),
        ("/admin/rollout/{route}/{action}", act, ["POST"]),
    ]


async def _status(driver: Driver | None, route: str | None) -> Any:
    assert driver is not None
    found = await driver.status(route)
    return found[0] if route else {"rollouts": found}


async def _act(driver: Driver | None, route: str, action: str) -> Any:
    assert driver is not None
    await driver.act(route, action)
    return (await driver.status(route))[0]


async def _shadow_panel(store: ResultStore | None) -> dict[str, Any] | None:
    """The last :data:`SHADOW_SPAN` seconds of shadow results, per endpoint (None: no
    route shadows traffic; an ``error`` when the store cannot be read)."""
    if store is None:
        return None
    try:
        results = await store.results(time.time() - SHADOW_SPAN)
    except ShadowStoreError as exc:
        return {"span": SHADOW_SPAN, "endpoints": [], "error": f"shadow results: {exc}"}
    return {"span": SHADOW_SPAN, "endpoints": shadow_stats(results)}


async def _outbox_panel(store: OutboxStore | None) -> dict[str, Any] | None:
    """The outbox's backlog and the relay's state (None: no route captures writes)."""
    if store is None:
        return None
    try:
        return outbox_stats(await store.status(), await store.relay_state())
    except OutboxError as exc:
        return {"error": f"outbox: {exc}"}


def _stats_endpoint(hooks: AdminHooks) -> Callable[[Request], Awaitable[Response]]:
    """``/admin/stats``: what the dashboard shows, in one call."""
    window = Window()

    async def stats(request: Request) -> Response:
        config, snapshot = hooks.config(), hooks.snapshot()
        rollouts: list[dict[str, Any]] = []
        if hooks.rollout is not None:
            try:
                rollouts = await hooks.rollout.status()
            except StoreError as exc:
                return JSONResponse({"error": str(exc)}, status_code=503)
        live = with_weights(config, {r["route"]: (r["backend"], r["weight"]) for r in rollouts})
        names = [route.name for route in config.routes]
        now = sample(snapshot, names, time.monotonic())
        return JSONResponse(
            {
                "routes": _routes(live, snapshot),
                "backends": backend_stats(window.add(now), now),
                "rollouts": rollouts,
                "shadow": await _shadow_panel(hooks.shadow),
                "outbox": await _outbox_panel(hooks.outbox),
            }
        )

    return stats


#: the admin application (what :func:`build_admin` returns)
AdminApp = Starlette


def build_admin(hooks: AdminHooks) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if hooks.ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            render(hooks.snapshot()), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def config(request: Request) -> Response:
        return JSONResponse(effective(hooks.config()))

    async def routes(request: Request) -> Response:
        return JSONResponse({"routes": _routes(hooks.config(), hooks.snapshot())})

    async def reload(request: Request) -> Response:
        ok, problems = hooks.reload()
        if ok:
            return JSONResponse({"reloaded": True})
        return JSONResponse({"reloaded": False, "problems": problems}, status_code=422)

    endpoints: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/healthz", healthz, ["GET"]),
        ("/readyz", readyz, ["GET"]),
        ("/metrics", metrics, ["GET"]),
        ("/admin/config", config, ["GET"]),
        ("/admin/routes", routes, ["GET"]),
        ("/admin/reload", reload, ["POST"]),
        *_rollout_endpoints(hooks.rollout),
        ("/admin/stats", _stats_endpoint(hooks), ["GET"]),
        *page_endpoints(),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if hooks.on_start is not None:
            await hooks.on_start()
        yield

    return Starlette(
        routes=[Route(path, fn, methods=methods) for path, fn, methods in endpoints],
        middleware=[Middleware(_Guard, policy=hooks.policy)],
        lifespan=lifespan,
    )
