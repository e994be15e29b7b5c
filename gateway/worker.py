"""One gateway worker process: uvicorn serving the proxy (gateway.protocol) on an inherited
socket.

Started by :mod:`gateway.server` as ``python -m gateway.worker``.  It reloads
routes.yaml on SIGHUP (keeping its configuration if the file is invalid) and
publishes a metrics snapshot about once a second for the admin process.
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
from pathlib import Path

import uvicorn

from gateway.config import Config, ConfigError, load_file
from gateway.metrics import GatewayMetrics
from gateway.outbox import OutboxError, open_store
from gateway.protocol import protocol_class
from gateway.proxy import Generation, Proxy
from gateway.recorder import Recorder
from gateway.tasks import spawn
from gateway.upstream import PooledTransport
from shadow.mirror import Mirror
from shadow.store import DEFAULT_URL
from shadow.store import open_store as open_results

log = logging.getLogger("strangler.worker")
SNAPSHOT_INTERVAL = 1.0


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


def build_proxy(config: Config, metrics: GatewayMetrics | None = None) -> Proxy:
    """The proxy app with its real transport, the WebSocket relay and write capture."""
    from gateway.websocket import relay

    metrics = metrics or GatewayMetrics()
    recorder = make_recorder(config, metrics)
    proxy = Proxy(Generation(config), PooledTransport(), metrics, recorder=recorder)
    proxy.websocket = relay
    if recorder is not None:

        async def start_recorder() -> None:
            try:
                await recorder.store.init()
            except OutboxError as exc:
                log.error("outbox not ready (captured writes are spooled meanwhile): %s", exc)
            recorder.start()

        async def stop_recorder() -> None:
            await recorder.stop()
            await recorder.store.close()

        proxy.on_startup.append(start_recorder)
        proxy.on_shutdown.append(stop_recorder)
    mirror = make_mirror(config, metrics)
    if mirror is not None:
        proxy.mirror = mirror

        async def start_mirror() -> None:
            mirror.start()

        proxy.on_startup.append(start_mirror)
        proxy.on_shutdown.append(mirror.stop)
    return proxy


class Worker:
    def __init__(self, config_path: str, metrics_dir: Path) -> None:
        self.config_path = config_path
        self.metrics_dir = metrics_dir
        self.config = load_file(config_path)
        self.metrics = GatewayMetrics()
        self.proxy = build_proxy(self.config, self.metrics)
        self.proxy.on_startup.append(self._started)
        self.proxy.on_shutdown.append(self._stopping)
        self._flusher: asyncio.Task[None] | None = None

    def reload(self) -> None:
        try:
            config = load_file(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        self.config = config
        self.proxy.swap(Generation(config))

    async def _started(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.metrics.registry.write(self.metrics_dir)
        self._flusher = spawn(self._flush(), name="metrics-snapshot")
        # What exists now (modules, configuration) lives as long as the worker: keep it out
        # of the collector's full passes, which otherwise pause every request in flight.
        gc.collect()
        gc.freeze()

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
        self.metrics.registry.write(self.metrics_dir)

    def run(self, sock: socket.socket) -> None:
        proxy = self.config.proxy
        server = uvicorn.Server(
            uvicorn.Config(
                self.proxy,
                http=protocol_class(
                    self.proxy.handle, proxy.max_header_bytes, proxy.client_timeout
                ),
                ws="websockets-sansio",
                loop="uvloop",
                lifespan="on",
                access_log=False,
                proxy_headers=False,  # X-Forwarded-* are ours to judge (trusted_proxies)
                server_header=False,
                date_header=False,
                log_level="warning",
                timeout_keep_alive=int(max(proxy.client_timeout, 1)),
                timeout_graceful_shutdown=30,
            )
        )
        server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--metrics-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    sock = socket.socket(fileno=args.fd)
    try:
        worker = Worker(args.config, Path(args.metrics_dir))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    worker.run(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
