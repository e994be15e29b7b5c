"""The one place that wires the proxy to its collaborators: the upstream transport, the
WebSocket relay, write capture (recorder + outbox) and the shadow mirror (+ result store).

The proxy only knows the ports in :mod:`gateway.proxy.ports`; this module picks the
real implementations from the configuration and passes them, with their start-up and
shut-down hooks, to the :class:`~gateway.proxy.proxy.Proxy` constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.capture.gate import CaptureGate
from gateway.capture.outbox import OutboxError, open_store
from gateway.capture.recorder import Recorder
from gateway.config import Config
from gateway.http.upstream import PooledTransport
from gateway.metrics.registry import GatewayMetrics
from gateway.proxy.generation import Generation
from gateway.proxy.ports import Hook
from gateway.proxy.proxy import Proxy
from gateway.proxy.websocket import relay
from gateway.rollout.evidence import ShadowTally
from gateway.rollout.store import RolloutStore
from gateway.rollout.store import open_store as open_rollouts
from shadow.mirror import Mirror
from shadow.report.aggregate import build as shadow_report
from shadow.store import DEFAULT_URL, ResultStore, StoreError
from shadow.store import open_store as open_results

log = logging.getLogger("strangler.worker")


def make_recorder(config: Config, metrics: GatewayMetrics) -> Recorder | None:
    """The capture recorder, when any route captures writes."""
    if not any(route.capture for route in config.routes):
        return None
    outbox = config.outbox
    return Recorder(
        open_store(outbox["url"]),
        Path(outbox["spool"]),
        outbox["on_error"],
        outbox["max_body_bytes"],
        metrics.registry,
    )


def make_mirror(config: Config, metrics: GatewayMetrics) -> Mirror | None:
    """The shadow mirror, when any route shadows traffic."""
    if not any(route.shadow for route in config.routes):
        return None
    store = open_results(config.shadow_store_url or DEFAULT_URL)
    return Mirror(config.backends, metrics.registry, store)


def make_rollout_store(config: Config) -> RolloutStore | None:
    """The shared rollout store, when any route has a ``rollout:`` block."""
    if not any(route.rollout for route in config.routes):
        return None
    return open_rollouts(config.rollout_store_url)


class ShadowTallies:
    """The rollout driver's view of the shadow results: one route's comparisons since a
    time, summed over its endpoints, with the endpoint and field that differed most."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    async def close(self) -> None:
        await self.store.close()

    async def __call__(self, route: str, since: float) -> ShadowTally:
        try:
            results = await self.store.results(since, route)
        except StoreError as exc:
            log.error("shadow results unreadable for the rollout of %s: %s", route, exc)
            return ShadowTally()
        endpoints = shadow_report(results).endpoints
        worst = max(endpoints, key=lambda e: e.differing, default=None)
        top = worst.fields[0].path if worst is not None and worst.fields else ""
        where = f"{worst.method} {worst.endpoint}" if worst is not None and worst.differing else ""
        return ShadowTally(
            sum(e.compared for e in endpoints), sum(e.matched for e in endpoints), where, top
        )


def make_shadow_tallies(config: Config) -> ShadowTallies | None:
    """The shadow results the rollout gates read, when any route shadows traffic."""
    if not any(route.shadow for route in config.routes):
        return None
    return ShadowTallies(open_results(config.shadow_store_url or DEFAULT_URL))


def _recorder_hooks(recorder: Recorder) -> tuple[Hook, Hook]:
    async def start() -> None:
        try:
            await recorder.store.init()
        except OutboxError as exc:
            log.error("outbox not ready (captured writes are spooled meanwhile): %s", exc)
        recorder.start()

    async def stop() -> None:
        await recorder.stop()
        await recorder.store.close()

    return start, stop


def _mirror_hooks(mirror: Mirror) -> tuple[Hook, Hook]:
    async def start() -> None:
        mirror.start()

    return start, mirror.stop


def build_proxy(
    config: Config,
    metrics: GatewayMetrics | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Proxy:
    """The proxy app with its real transport, the WebSocket relay, write capture and the
    shadow mirror; ``on_startup``/``on_shutdown`` run after/before theirs."""
    metrics = metrics or GatewayMetrics()
    starts: list[Hook] = []
    stops: list[Hook] = []
    recorder = make_recorder(config, metrics)
    if recorder is not None:
        start, stop = _recorder_hooks(recorder)
        starts.append(start)
        stops.append(stop)
    mirror = make_mirror(config, metrics)
    if mirror is not None:
        start, stop = _mirror_hooks(mirror)
        starts.append(start)
        stops.append(stop)
    return Proxy(
        Generation(config),
        PooledTransport(),
        metrics,
        capture=CaptureGate(recorder) if recorder is not None else None,
        mirror=mirror,
        websocket=relay,
        on_startup=[*starts, *on_startup],
        on_shutdown=[*on_shutdown, *stops],
    )


#: the label of ``strangler_refused_total`` for what the server refuses itself
_REFUSED_BY_SERVER = {
    400: "malformed",
    408: "slow-client",
    413: "body-size",
    414: "headers",
    431: "headers",
    500: "internal",
    501: "transfer-coding",
    505: "version",
}


def count_refusals(metrics: GatewayMetrics) -> Callable[[int], None]:
    """The server's ``on_refused`` callback: requests it refuses before the proxy sees them
    count in ``strangler_refused_total`` like the proxy's own refusals."""

    def refused(status: int) -> None:
        metrics.refused.inc((_REFUSED_BY_SERVER.get(status, str(status)),))

    return refused
