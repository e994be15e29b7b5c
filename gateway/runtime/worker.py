"""One gateway worker process: the proxy's own HTTP/1.1 server (gateway.http.server) on an
inherited socket, on uvloop when it is installed.

Started by :mod:`gateway.runtime.supervisor` as ``python -m gateway.runtime.worker``, with ``-c``
naming the supervisor's copy of the last configuration that passed validation (never the
routes.yaml being edited).  It reloads that copy on SIGHUP (keeping its configuration if it
is somehow invalid) and publishes a metrics snapshot about once a second for the admin
process.

A SIGHUP must never kill a worker, not even one still starting: the supervisor starts it
with SIGHUP blocked, :func:`main` first installs a handler that only notes the signal
(:class:`EarlyHangups`) and unblocks it, and once the event loop runs the real handler takes
over and a reload noted meanwhile is done.  SIGTERM (or SIGINT) drains the server: it stops
accepting, closes idle connections and finishes the requests in flight (for at most
``DRAIN_GRACE`` seconds) before the proxy's stop hooks run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.config import ConfigError, load_file
from gateway.http.lifespan import Lifespan
from gateway.http.server import Server
from gateway.metrics.registry import GatewayMetrics
from gateway.proxy.generation import Generation
from gateway.rollout.follower import Follower
from gateway.rollout.weights import Weights, with_weights
from gateway.runtime.wiring import build_proxy, count_refusals, make_rollout_store
from gateway.tasks import spawn

log = logging.getLogger("strangler.worker")
SNAPSHOT_INTERVAL = 1.0
DRAIN_GRACE = 30.0  # seconds the requests in flight get to finish on SIGTERM
GC_YOUNG_THRESHOLD = 7000  # the collector's young-generation threshold in a worker


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop
    new: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new


class EarlyHangups:
    """SIGHUPs that arrive before the event loop can handle them: noted, not fatal."""

    def __init__(self) -> None:
        self.pending = False
        signal.signal(signal.SIGHUP, self._note)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})

    def _note(self, signum: int, frame: object) -> None:
        self.pending = True


class Worker:
    def __init__(
        self, config_path: str, metrics_dir: Path, hangups: EarlyHangups | None = None
    ) -> None:
        self.hangups = hangups
        self.config_path = config_path
        self.metrics_dir = metrics_dir
        self.config = load_file(config_path)
        self.metrics = GatewayMetrics()
        self.proxy = build_proxy(
            self.config, self.metrics, on_startup=[self._started], on_shutdown=[self._stopping]
        )
        self._flusher: asyncio.Task[None] | None = None
        rollouts = make_rollout_store(self.config)
        self.follower = Follower(rollouts, self._apply_weights) if rollouts else None
        self._following: asyncio.Task[None] | None = None

    def _apply_weights(self, weights: Weights) -> None:
        log.info("rollout weights now %s", dict(weights))
        self.proxy.swap(Generation(with_weights(self.config, weights)))

    def reload(self) -> None:
        try:
            config = load_file(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        self.config = config
        weights = self.follower.weights if self.follower is not None else {}
        self.proxy.swap(Generation(with_weights(config, weights)))

    async def _started(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        if self.hangups is not None and self.hangups.pending:
            log.info("reloading: SIGHUP arrived while starting")
            self.reload()
        if self.follower is not None:
            await self.follower.poll()  # serve the shared weights from the first request
            self._following = spawn(self.follower.run(), name="rollout-weights")
        self.metrics.registry.write(self.metrics_dir)
        self._flusher = spawn(self._flush(), name="metrics-snapshot")
        # What exists now (modules, configuration) lives as long as the worker: keep it out
        # of the collector's full passes, which otherwise pause every request in flight.
        gc.collect()
        gc.freeze()
        # A pass of the young generation starts when tracked objects made outnumber those
        # freed by the threshold.  A request's objects are freed as it ends, so the count
        # drifts up only by what requests in flight hold, and 700 (the default) is reached
        # every few hundred requests, a pass each time over all of them.  Cycles of garbage
        # wait longer, bounded by the threshold.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    async def _flush(self) -> None:
        parent = os.getppid()
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            self.metrics.registry.write(self.metrics_dir)
            if os.getppid() != parent:
                log.error("supervisor is gone; stopping")
                os.kill(os.getpid(), signal.SIGTERM)

    async def _stopping(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self._following is not None:
            self._following.cancel()
        if self.follower is not None:
            await self.follower.store.close()
        self.metrics.registry.write(self.metrics_dir)

    def server(self) -> Server:
        """The proxy's HTTP/1.1 server, as the configuration sets it up."""
        proxy = self.config.proxy
        return Server(
            self.proxy.handle,
            self.proxy,
            max_header_bytes=proxy.max_header_bytes,
            head_timeout=proxy.client_timeout,
            body_timeout=proxy.client_timeout,
            keep_alive=max(proxy.client_timeout, 1.0),
            on_refused=count_refusals(self.metrics),
        )

    async def serve(self, sock: socket.socket) -> None:
        """Serve on ``sock`` until SIGTERM or SIGINT, then drain."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        lifespan = Lifespan(self.proxy)
        await lifespan.startup()
        server = self.server()
        await server.start(sock)
        await stop.wait()
        log.info("draining: %d connections open", len(server.connections))
        await server.drain(DRAIN_GRACE)
        await lifespan.shutdown()

    def run(self, sock: socket.socket) -> None:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(self.serve(sock))


def main(argv: list[str] | None = None) -> int:
    hangups = EarlyHangups()  # first: from here on a SIGHUP is noted, not fatal
    parser = argparse.ArgumentParser(prog="python -m gateway.runtime.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--metrics-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    sock = socket.socket(fileno=args.fd)
    try:
        worker = Worker(args.config, Path(args.metrics_dir), hangups)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    worker.run(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
