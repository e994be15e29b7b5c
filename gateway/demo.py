"""``strangler demo``: the example monolith behind the gateway, on embedded defaults.

Starts ``examples.legacy_monolith`` on the port routes.yaml gives the ``legacy``
backend, then ``strangler run`` on routes.yaml, sends a little traffic (order
writes, which are captured into the SQLite outbox, and reads), prints where to
look, and runs until Ctrl-C, which stops everything.  Run it from the
repository root (``make demo``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.config import Config

DATA = Path("demo-data")


def _wait(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {seconds:.0f}s")


def _traffic(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for n in range(1, 4):
            created = client.post(
                "/api/orders", json={"customer": f"customer-{n}", "item": "book", "quantity": n}
            )
            order = created.json()
            client.patch(f"/api/orders/{order['id']}", json={"status": "paid"})
            print(
                f"  POST /api/orders -> {created.status_code} order {order['id']} "
                f"(served by {created.headers.get('x-strangler-backend')})"
            )
        for user in ("alice", "bob", "carol"):
            read = client.get("/api/orders", headers={"x-user-id": user})
            print(
                f"  GET /api/orders as {user} -> {read.status_code} "
                f"via {read.headers.get('x-strangler-backend')}"
            )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(config: Config, config_path: str) -> int:
    legacy = config.backends.get("legacy")
    if legacy is None:
        print("the demo needs a backend named 'legacy' in routes.yaml", file=sys.stderr)
        return 2
    DATA.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C does
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.legacy_monolith",
                "--host",
                legacy.host,
                "--port",
                str(legacy.port),
                "--db",
                str(DATA / "legacy.db"),
            ]
        ),
        subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "-c", config_path]),
    ]
    gateway = f"http://{config.listen[0]}:{config.listen[1]}"
    admin = f"http://{config.admin_listen[0]}:{config.admin_listen[1]}"
    try:
        _wait(f"http://{legacy.host}:{legacy.port}/api/orders")
        _wait(f"{admin}/readyz")
        print("\nstrangler demo: sending a little traffic through the gateway")
        _traffic(gateway)
        time.sleep(1.2)  # workers publish their counts once a second
        routes = httpx.get(f"{admin}/admin/routes", timeout=5).json()["routes"]
        print("\nroutes and live counts:")
        print(
            json.dumps(
                [{r["name"]: {b["backend"]: b["requests"] for b in r["backends"]}} for r in routes]
            )
        )
        print(f"""
  gateway          {gateway}/api/orders
  admin, metrics   {admin}/admin/routes   {admin}/metrics
  legacy monolith  http://{legacy.host}:{legacy.port}/api/orders
  captured events  strangler outbox status -c {config_path}

Ctrl-C stops everything.""")
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        print("a demo process exited; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0
