"""``strangler run``: the supervisor process.

It binds the proxy socket, starts N worker processes that inherit it
(:mod:`gateway.runtime.worker`), restarts a worker that dies, and serves the admin API.
Reloads (SIGHUP, a change of the file's mtime, or ``POST /admin/reload``) are validated
here first: an invalid file is refused with the same messages as ``strangler validate``,
logged and counted, and the workers keep their configuration; a valid one is copied to
the supervisor's temporary directory and applied by sending each worker SIGHUP.

Workers only ever read that copy, the last configuration that passed validation (as
nginx's master process does): a worker started after routes.yaml was broken on disk
still starts, with the configuration the others serve.  Workers are started with SIGHUP
blocked, so a reload signalled while one starts reaches it once it can handle it.

``strangler run`` refuses to start (exit 2) when ``admin.token_env`` or
``admin.metrics_token_env`` names a variable that is empty or unset: an admin API that
was meant to need a token is never served without one; and when
``proxy.origin_token_env`` does: the reverse sync's writes would be captured (an echo).
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn

from gateway import native
from gateway.capture.outbox import OutboxError, OutboxStore
from gateway.capture.outbox import open_store as open_outbox
from gateway.config import Config, ConfigError, parse, read_text
from gateway.metrics.registry import GatewayMetrics, merge, read_snapshots
from gateway.rollout.driver import Driver
from gateway.rollout.store import StoreError
from gateway.runtime.access import AccessPolicy
from gateway.runtime.admin import AdminApp, AdminHooks, build_admin
from gateway.runtime.wiring import make_rollout_store, make_shadow_tallies
from gateway.tasks import spawn
from shadow.store import DEFAULT_URL as SHADOW_DEFAULT_URL
from shadow.store import ResultStore
from shadow.store import StoreError as ShadowStoreError
from shadow.store import open_store as open_results

log = logging.getLogger("strangler")
WATCH_INTERVAL = 1.0
# Seconds between checkpoints of the shadow results (SQLite).  After each, the first worker
# commit restarts the WAL and fsyncs its header (a few ms on its loop): not too often.
CHECKPOINT_INTERVAL = 30.0
RAM_DIR = Path("/dev/shm")


def state_root() -> str | None:
    """Where the state the supervisor shares with its workers goes (the configuration they
    read, the metrics snapshot each replaces every second): a RAM-backed directory when
    the machine has one, else the temporary directory.  On a disk, replacing a file frees
    the old one's blocks, and on ext4 mounted with ``discard`` the worker's event loop waits
    for the device to discard them: a few milliseconds each second, sometimes a hundred."""
    if RAM_DIR.is_dir() and os.access(RAM_DIR, os.W_OK | os.X_OK):
        return str(RAM_DIR)
    return None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def read_config(path: str) -> tuple[str, Config]:
    """The file's text and its configuration, from one read (so that the two agree)."""
    text = read_text(path)  # bounded, decoded, or a ConfigError naming the file
    return text, parse(text, path)


class Supervisor:
    """The workers, the validated copy of the configuration they read, and reloads.

    Reads ``config_path`` itself (raising :class:`ConfigError`): the copy the workers start
    from must be exactly the text that was validated.
    """

    def __init__(self, config_path: str, workers: int) -> None:
        self._good_text, self.config = read_config(config_path)
        self.config_path = config_path
        self.workers = max(1, workers)
        self.metrics = GatewayMetrics()
        self.sock = bind(*self.config.listen)
        self.state_dir = Path(tempfile.mkdtemp(prefix="strangler-", dir=state_root()))
        self.metrics_dir = self.state_dir / "metrics"
        self.good_config = self.state_dir / "routes.yaml"
        self._keep(self._good_text)
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self._mtime = self._stat()

    def _keep(self, text: str) -> None:
        """Make ``text`` the configuration workers read (atomically: never half a file).

        Also recreates the temporary directory if something cleaned it up meanwhile."""
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        partial = self.good_config.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.good_config)
        self._good_text = text

    # workers -----------------------------------------------------------
    def _start_worker(self) -> subprocess.Popen[bytes]:
        if not self.good_config.exists():
            self._keep(self._good_text)
        fd = self.sock.fileno()
        argv = [sys.executable, "-m", "gateway.runtime.worker", "--fd", str(fd)]
        argv += ["-c", str(self.good_config), "--metrics-dir", str(self.metrics_dir)]
        # The child inherits the signal mask across exec: SIGHUP stays pending, not fatal,
        # until the worker has a handler for it (gateway.runtime.worker.main).
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            return subprocess.Popen(argv, pass_fds=[fd])
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

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
            text, config = read_config(self.config_path)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            log.error("reload refused, keeping the running configuration:\n%s", "\n".join(problems))
            self.metrics.reloads.inc(("failed",))
            return False, problems
        if config.listen != self.config.listen:
            log.warning(
                "listen address changes need a restart; still on %s:%d", *self.config.listen
            )
        if _admin_settings(config) != _admin_settings(self.config):
            log.warning("admin settings (admin.*) change on restart only")
        try:
            self._keep(text)
        except OSError as exc:
            problem = f"cannot write the workers' copy {self.good_config}: {exc.strerror}"
            log.error("reload refused, keeping the running configuration: %s", problem)
            self.metrics.reloads.inc(("failed",))
            return False, [problem]
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
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _admin_settings(config: Config) -> tuple[object, ...]:
    return (
        config.admin_listen,
        config.admin_token_env,
        config.admin_metrics_token_env,
        config.admin_allowed_hosts,
    )


class MissingToken(Exception):
    """A ``*_token_env`` names a variable that is empty or unset."""


def _token(field: str, variable: str | None, environ: Mapping[str, str]) -> str | None:
    if variable is None:
        return None
    value = environ.get(variable, "")
    if not value:
        raise MissingToken(
            f"admin.{field} names {variable}, but that variable is empty or unset; "
            f"set it or remove {field}"
        )
    return value


def admin_policy(config: Config, environ: Mapping[str, str]) -> AccessPolicy:
    """Who may call the admin API; :class:`MissingToken` when a named token is missing."""
    return AccessPolicy(
        listen=config.admin_listen,
        allowed_hosts=config.admin_allowed_hosts,
        token=_token("token_env", config.admin_token_env, environ),
        metrics_token=_token("metrics_token_env", config.admin_metrics_token_env, environ),
    )


def check_origin_token(config: Config, environ: Mapping[str, str]) -> None:
    """:class:`MissingToken` when ``proxy.origin_token_env`` names an empty or unset variable."""
    variable = config.proxy.origin_token_env
    if variable is not None and not environ.get(variable):
        raise MissingToken(
            f"proxy.origin_token_env names {variable}, but that variable is empty or unset; "
            "set it or remove origin_token_env"
        )


def make_driver(supervisor: Supervisor) -> Driver | None:
    """The rollout driver, when any route has a ``rollout:`` block (started with the admin)."""
    store = make_rollout_store(supervisor.config)
    if store is None:
        return None
    return Driver(
        store,
        lambda: supervisor.config,
        supervisor.snapshot,
        supervisor.metrics.registry,
        make_shadow_tallies(supervisor.config),
    )


async def drive(driver: Driver, period: float = WATCH_INTERVAL) -> None:
    """Judge the rollouts about once a second, for as long as the admin runs (only while
    this replica holds the store's lease); give the lease up when stopped."""
    failing = ready = False
    try:
        while True:
            try:
                if not ready:
                    await driver.store.init()
                    ready = True
                await driver.tick()
                failing = False
            except StoreError as exc:
                if not failing:
                    log.error("rollout store failed; rollouts wait: %s", exc)
                failing = True
            await asyncio.sleep(period)
    finally:
        try:
            await driver.resign()
        except StoreError as exc:
            log.warning("could not give up the rollout lease (it expires by itself): %s", exc)
        finally:
            await driver.close()


def make_readers(config: Config) -> tuple[ResultStore | None, OutboxStore | None]:
    """The shadow results (when a route shadows traffic) and the outbox (when a route
    captures writes) the dashboard reads; opened once, closed by :func:`hold`."""
    shadow = None
    if any(route.shadow for route in config.routes):
        shadow = open_results(config.shadow_store_url or SHADOW_DEFAULT_URL)
    outbox = open_outbox(config.outbox["url"]) if any(r.capture for r in config.routes) else None
    return shadow, outbox


async def hold(
    shadow: ResultStore | None, outbox: OutboxStore | None, every: float = CHECKPOINT_INTERVAL
) -> None:
    """Keep the dashboard's readers until the admin stops, then close them (an open
    SQLite connection would keep the process from exiting).  Meanwhile checkpoint the
    shadow results ``every`` seconds: the workers' writes leave that to this process,
    whose reader runs it in its own thread, off any worker's event loop."""
    try:
        while True:
            await asyncio.sleep(every)
            if shadow is not None:
                try:
                    await shadow.checkpoint()
                except ShadowStoreError as exc:
                    log.warning("could not checkpoint the shadow results: %s", exc)
    finally:
        try:
            if shadow is not None:
                await shadow.close()
        except ShadowStoreError as exc:
            log.warning("could not close the shadow results: %s", exc)
        finally:
            try:
                if outbox is not None:
                    await outbox.close()
            except OutboxError as exc:
                log.warning("could not close the outbox: %s", exc)


def _admin_app(supervisor: Supervisor, policy: AccessPolicy) -> AdminApp:
    """The admin API with what it serves from: the supervisor, the rollout driver and the
    dashboard's readers, whose loops start (and whose stores close) with the admin server."""
    driver = make_driver(supervisor)
    shadow, outbox = make_readers(supervisor.config)

    async def on_start() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, supervisor.reload)
        spawn(supervisor.watch(), name="supervisor-watch")
        if driver is not None:
            spawn(drive(driver), name="rollout-driver")
        if shadow is not None or outbox is not None:
            spawn(hold(shadow, outbox), name="dashboard-readers")

    return build_admin(
        AdminHooks(
            config=lambda: supervisor.config,
            snapshot=supervisor.snapshot,
            reload=supervisor.reload,
            ready=supervisor.ready,
            policy=policy,
            on_start=on_start,
            rollout=driver,
            shadow=shadow,
            outbox=outbox,
        )
    )


def serve(config: Config, workers: int, config_path: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        policy = admin_policy(config, os.environ)
        check_origin_token(config, os.environ)
        supervisor = Supervisor(config_path, workers)
    except MissingToken as exc:
        print(exc, file=sys.stderr)
        return 2
    except ConfigError as exc:
        print("\n".join(str(p) for p in exc.problems), file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    supervisor.start()
    admin = _admin_app(supervisor, policy)
    host, port = config.admin_listen
    log.info(
        "proxy on http://%s:%d (%d workers), admin on http://%s:%d",
        *config.listen,
        supervisor.workers,
        host,
        port,
    )
    outdated = native.stale()
    if outdated:  # Python imports the old build, not the edited source
        log.warning("native builds older than their sources (make native): %s", outdated)
    else:
        log.info(
            "request path: %d of %d modules native", len(native.compiled()), len(native.MODULES)
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
