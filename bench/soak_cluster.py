"""The soak benchmark's processes: the two example monoliths and ``strangler run``, each in
its own process group and tied to this script's life, on free ports in a run directory;
and the resident memory of the gateway's workers, read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.run import HOST, free_port
from examples.lifeline import wrap

ROOT = Path(__file__).resolve().parent.parent


class Child:
    """A process in its own process group, started through ``examples.lifeline`` so that
    it dies with this script even when the script is killed outright."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                wrap(self.argv),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole group at once: no chance to finish anything."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM the process (a supervisor stops its own workers), then SIGKILL whatever
        of its group is left."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"{self.name} ignored SIGTERM for {timeout:.0f}s; killing it", file=sys.stderr
                )
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_ready(child: Child, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` and the child's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is None or child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited before {what}; see {child.log}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f}s; see {child.log}")


def listening(port: int) -> bool:
    socket.create_connection((HOST, port), 0.5).close()
    return True


class Cluster:
    """The two monoliths and ``strangler run``, on free ports in ``run``."""

    def __init__(self, run: Path, workers: int) -> None:
        self.run, self.workers = run, workers
        self.port, self.admin = free_port(), free_port()
        self.legacy_port, self.new_port = free_port(), free_port()
        self.config = run / "routes.yaml"
        self.outbox = run / "outbox.db"
        monolith = [sys.executable, "-m", "examples.legacy_monolith", "--host", HOST]
        run_cmd = [sys.executable, "-m", "gateway.cli", "run", "-c", str(self.config)]
        self.legacy = Child(
            "legacy monolith",
            [*monolith, "--port", str(self.legacy_port), "--db", str(run / "legacy.db")],
            run / "legacy.log",
        )
        self.new = Child(
            "shadow monolith",
            [*monolith, "--port", str(self.new_port), "--db", str(run / "new.db")],
            run / "new.log",
        )
        self.gateway = Child(
            "strangler run", [*run_cmd, "--workers", str(workers)], run / "gateway.log"
        )

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin}"

    def routes(self, weight: int) -> str:
        """routes.yaml; ``weight`` is the new backend's share of the catch-all route."""
        return f"""\
version: 1
listen: {HOST}:{self.port}
admin: {{listen: {HOST}:{self.admin}}}
backends:
  legacy: {{url: "http://{HOST}:{self.legacy_port}", legacy: true}}
  new: {{url: "http://{HOST}:{self.new_port}"}}
routes:
  - name: order-reads
    match: {{prefix: /api/orders, methods: [GET]}}
    split: {{legacy: 100}}
    shadow: {{backend: new, percent: 100}}
  - name: order-writes
    match: {{prefix: /api/orders}}
    split: {{legacy: 100}}
    capture:
      - {{method: POST, path: /api/orders, event: OrderCreated, aggregate: order,
          id: "response:/id"}}
      - {{method: PATCH, path: "/api/orders/{{id}}", event: OrderUpdated, aggregate: order,
          id: "path:id"}}
      - {{method: DELETE, path: "/api/orders/{{id}}", event: OrderDeleted, aggregate: order,
          id: "path:id", payload: none}}
  - name: default
    split: {{legacy: {100 - weight}, new: {weight}}}
outbox: {{url: "sqlite:///{self.outbox}", spool: "{self.run / "spool"}"}}
shadow_store: {{url: "sqlite:///{self.run / "shadow.db"}"}}
"""

    def write_routes(self, weight: int) -> None:
        """Replace routes.yaml in one step: a reader never sees half a file."""
        partial = self.config.with_suffix(".partial")
        partial.write_text(self.routes(weight), encoding="utf-8")
        os.replace(partial, self.config)

    def start_legacy(self) -> None:
        self.legacy.start()
        wait_ready(self.legacy, lambda: listening(self.legacy_port), "the monolith listening")

    def start(self) -> None:
        self.start_legacy()
        self.new.start()
        wait_ready(self.new, lambda: listening(self.new_port), "the shadow monolith listening")
        self.write_routes(0)
        self.gateway.start()
        ready = f"{self.admin_url}/readyz"
        wait_ready(self.gateway, lambda: httpx.get(ready).status_code == 200, "/readyz saying 200")

    def stop(self) -> None:
        for child in (self.gateway, self.legacy, self.new):
            child.stop()


def worker_rss(supervisor: int) -> dict[int, int]:
    """VmRSS (KiB) of each child of the ``strangler run`` process."""
    out: dict[int, int] = {}
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return out
    for pid in map(int, children):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # it just exited
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out[pid] = int(line.split()[1])
    return out


def answers(port: int) -> bool:
    try:
        return listening(port)
    except OSError:
        return False
