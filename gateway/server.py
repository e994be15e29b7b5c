"""``strangler run``: the supervisor process.

It binds the proxy socket, starts N worker processes that inherit it
(:mod:`gateway.worker`; they share nothing but the config file), restarts a
worker that dies, and serves the admin API.  Reloads (SIGHUP, a change of the
file's mtime, or ``POST /admin/reload``) are validated here first: an invalid
file is refused with the same messages as ``strangler validate``, logged and
counted, and the workers keep their configuration; a valid one is applied by
sending each worker SIGHUP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from gateway.admin import AdminHooks, build_admin
from gateway.config import Config, ConfigError, load_file
from gateway.metrics import GatewayMetrics, merge, read_snapshots
from gateway.tasks import spawn

log = logging.getLogger("strangler")
WATCH_INTERVAL = 1.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, config: Config, config_path: str, workers: int) -> None:
        self.config = config
        self.config_path = config_path
        self.workers = max(1, workers)
        self.metrics = GatewayMetrics()
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="strangler-metrics-"))
        self.sock = bind(*config.listen)
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self._mtime = self._stat()

    # workers -----------------------------------------------------------
    def _start_worker(self) -> subprocess.Popen[bytes]:
        fd = self.sock.fileno()
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.worker",
                "--fd",
                str(fd),
                "-c",
                self.config_path,
                "--metrics-dir",
                str(self.metrics_dir),
            ],
            pass_fds=[fd],
        )

    def start(self) -> None:
        self.children = [self._start_worker() for _ in range(self.workers)]

    def ready(self) -> bool:
        alive = [c for c in self.children if c.poll() is None]
        published = {p.stem for p in self.metrics_dir.glob("metrics-*.json")}
        return len(alive) == self.workers and all(f"metrics-{c.pid}" in published for c in alive)

    async def watch(self) -> None:
        """Restart dead workers and notice a changed config file."""
        while not self.stopping:
            await asyncio.sleep(WATCH_INTERVAL / 2)
            for i, child in enumerate(self.children):
                if child.poll() is not None and not self.stopping:
                    log.error(
                        "worker %d exited with %s; starting another", child.pid, child.returncode
                    )
                    self.children[i] = self._start_worker()
            mtime = self._stat()
            if mtime != self._mtime:
                self._mtime = mtime
                self.reload()

    def _stat(self) -> float:
        try:
            return os.stat(self.config_path).st_mtime
        except OSError:
            return 0.0

    def reload(self) -> tuple[bool, list[str]]:
        try:
            config = load_file(self.config_path)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            log.error("reload refused, keeping the running configuration:\n%s", "\n".join(problems))
            self.metrics.reloads.inc(("failed",))
            return False, problems
        if config.listen != self.config.listen:
            log.warning(
                "listen address changes need a restart; still on %s:%d", *self.config.listen
            )
        self.config = config
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGHUP)
        self.metrics.reloads.inc(("ok",))
        log.info("configuration reloaded from %s", self.config_path)
        return True, []

    def snapshot(self) -> dict[str, Any]:
        return merge([*read_snapshots(self.metrics_dir), self.metrics.registry.snapshot()])

    def stop(self) -> None:
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(35)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.sock.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def _admin_token(config: Config) -> str | None:
    if config.admin_token_env is None:
        return None
    return os.environ.get(config.admin_token_env) or None


def serve(config: Config, workers: int, config_path: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        supervisor = Supervisor(config, config_path, workers)
    except OSError as exc:
        print(
            f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    supervisor.start()

    async def on_start() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, supervisor.reload)
        spawn(supervisor.watch(), name="supervisor-watch")

    admin = build_admin(
        AdminHooks(
            config=lambda: supervisor.config,
            snapshot=supervisor.snapshot,
            reload=supervisor.reload,
            ready=supervisor.ready,
            token=_admin_token(config),
            on_start=on_start,
        )
    )

    host, port = config.admin_listen
    log.info(
        "proxy on http://%s:%d (%d workers), admin on http://%s:%d",
        *config.listen,
        supervisor.workers,
        host,
        port,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            admin, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
        )
    )
    # uvicorn re-raises the signal that stopped it once its own handlers are gone; make
    # SIGTERM unwind (like SIGINT does) so that the workers are stopped, not orphaned.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        supervisor.stop()
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(0)
