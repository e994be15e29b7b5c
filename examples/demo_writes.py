"""The demo's second half: the order writes moved to the order service and back.

After the reads (:mod:`examples.demo`), on the same processes: the gateway serves a copy
of routes.yaml in ``demo-data/`` (so the demo can change the routes and reload them
without touching the user's file), the order service stores its writes in the outbox's
database and publishes them (``--events``, ``--publish``), and the reverse sync applies
them to the monolith directly (no echo: its writes never pass the gateway's capture).

1. Shadowed dry runs: the write route mirrors writes to the service, which decides and
   commits nothing; the shadow report's ``writes (dry run)`` lines give the parity.
2. Cut-over: the service's writes close, the routes send writes to it, and once the
   monolith, the service's read model and its import agree, its writes open.
3. Writes through the gateway get ids from the block the service claimed; the monolith
   lists them (reverse sync, lag 0) and captured no event for them (no echo).
4. Rollback: the service's writes close, the reverse sync catches up, and only then do
   the routes send writes to the monolith again; the monolith's new orders get ids
   after the service's block.
5. ``strangler reconcile``: no difference between the monolith and the service.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.config import Config
from gateway.config.yamlsource import load

WRITES_ROUTE = "orders-writes"
SHADOW_IGNORE = ["/id", "/created_at", "/updated_at", "header:date"]
IMPORT_GROUP = "order-service-import"
SYNC_GROUP = "reverse-sync-order"


class WritesSkipped(Exception):
    """The configuration has no write route the demo knows how to move."""


def served_copy(config_path: str, data: Path) -> str:
    """The routes.yaml the gateway serves: a copy in ``data`` the demo may rewrite."""
    copy = data / "routes.yaml"
    copy.write_text(Path(config_path).read_text())
    return str(copy)


def moved(text: str, writer: str, shadow_to: str | None = None) -> str:
    """routes.yaml ``text`` with the write route's writes all sent to ``writer``, mirrored
    as dry runs to ``shadow_to`` when given (pure).  Comments do not survive."""
    doc = load(text).data  # the gateway's reading (``on:`` stays a key, not a boolean)
    routes = [r for r in doc.get("routes", []) if r.get("name") == WRITES_ROUTE]
    if not routes:
        raise WritesSkipped(f"routes.yaml has no route named {WRITES_ROUTE!r}")
    route = routes[0]
    route["split"] = {writer: 100}
    route.pop("shadow", None)
    if shadow_to is not None:
        route["shadow"] = {
            "backend": shadow_to,
            "percent": 100,
            "methods": ["POST", "PUT", "PATCH", "DELETE"],
            "allow_writes": True,
            "ignore": SHADOW_IGNORE,
        }
    dumped: str = yaml.safe_dump(doc, sort_keys=False)
    return dumped


def write_parity(report: str) -> list[tuple[str, str]]:
    """``(endpoint, parity)`` of each write endpoint in a text shadow report (pure)."""
    found, endpoint = [], ""
    for line in report.splitlines():
        parts = line.split("  ")
        if len(parts) > 1 and not line.startswith(" "):  # "ROUTE  METHOD PATH  (shadow: B)"
            endpoint = parts[1]
        elif line.strip().startswith("writes (dry run):"):
            found.append((endpoint, line.split(":", 1)[1].strip()))
    return found


def _eventually(what: str, check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo waited {seconds:.0f}s for {what}")
        time.sleep(0.2)


class Journey:
    """The steps, over the demo's running processes."""

    def __init__(
        self,
        config: Config,
        served: str,
        urls: dict[str, str],
        admin_headers: dict[str, str],
        service: tuple[str, str],
    ) -> None:
        self.config, self.served = config, served
        self.gateway, self.admin = urls["gateway"], urls["admin"]
        self.legacy, self.service = urls["legacy"], urls["service"]
        self.admin_headers = admin_headers
        # the service's backend name, and its database (read model and inboxes)
        self.service_name, self.service_db = service
        self.outbox = str(config.outbox["url"])  # also the service's event store
        self.bootstrap = str(config.kafka["bootstrap"])
        self.topic = topic_of(config)

    # -- the pieces -------------------------------------------------------------------

    def reload(self, writer: str, shadow: bool = False) -> None:
        path = Path(self.served)
        text = moved(path.read_text(), writer, self.service_name if shadow else None)
        path.write_text(text)
        reply = httpx.post(f"{self.admin}/admin/reload", headers=self.admin_headers, timeout=10)
        if reply.status_code != 200:
            raise RuntimeError(f"reload refused: {reply.status_code} {reply.text}")

    def writes_open(self, open_: bool) -> None:
        httpx.post(f"{self.service}/admin/writes", json={"open": open_}, timeout=5)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True
        )
        return done.stdout

    def sources(self) -> dict[str, int]:
        """The service's stored events by ``metadata.source``."""
        from strangler_events.eventstore import open_event_store

        async def count() -> dict[str, int]:
            store = open_event_store(self.outbox)
            try:
                events = await store.read_all(limit=100_000)
            finally:
                await store.close()
            out: dict[str, int] = {}
            for e in events:
                source = str(e.metadata.get("source"))
                out[source] = out.get(source, 0) + 1
            return out

        return asyncio.run(count())

    def behind(self, group: str) -> int:
        """How far ``group`` is behind the order topic (its stored positions)."""
        from strangler_events.database import open_database
        from strangler_events.reverse_sync.runner import lag

        async def total() -> int:
            database = open_database(self.service_db)
            try:
                return sum(p.lag for p in await lag(self.bootstrap, [self.topic], database, group))
            finally:
                await database.close()

        return asyncio.run(total())

    def pending(self) -> int:
        from gateway.capture.outbox import open_store

        async def count() -> int:
            store = open_store(self.outbox)
            try:
                return len(await store.pending(100))
            finally:
                await store.close()

        return asyncio.run(count())

    def agree(self, group: str) -> bool:
        """Nothing pending, ``group`` at the topic's end, the two systems the same."""
        if self.pending() or self.behind(group):
            return False
        legacy = httpx.get(f"{self.legacy}/api/orders", timeout=5).json()
        return bool(httpx.get(f"{self.service}/api/orders", timeout=5).json() == legacy)

    def send(self, client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
        while True:  # a closed writer answers 503: retried, as its Retry-After asks
            reply = client.request(method, path, json=body)
            if reply.status_code != 503:
                break
            time.sleep(0.2)
        if reply.status_code not in (200, 201, 204):
            raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text}")
        return reply.json() if reply.status_code != 204 else None

    # -- the steps --------------------------------------------------------------------

    def dry_runs(self) -> None:
        print("\nmoving writes 1/5: order writes shadowed to the order service as dry runs")
        self.reload("legacy", shadow=True)
        imported = self.sources().get("gateway", 0)
        with httpx.Client(base_url=self.gateway, timeout=10) as client:
            made = [
                self.send(client, "POST", "/api/orders", {"customer": f"w{n}", "item": "pen"})
                for n in range(6)
            ]
            ids = [o["id"] for o in made]
            # the dry runs are decided on the service's state: the creates imported first
            _eventually("the import", lambda: self.sources().get("gateway", 0) >= imported + 6)
            for i in ids[:3]:
                self.send(client, "PATCH", f"/api/orders/{i}", {"status": "paid"})
            self.send(client, "PUT", f"/api/orders/{ids[3]}", {"customer": "z", "item": "ink"})
            self.send(client, "DELETE", f"/api/orders/{ids[4]}")
        time.sleep(1.5)  # shadow results flush about twice a second
        report = self.cli("shadow", "report", "-c", self.served)
        for endpoint, parity in write_parity(report):
            print(f"  {endpoint:<26} writes (dry run): {parity}")
        print(f"  the service's store, by source: {self.sources()} (dry runs stored nothing)")

    def cut_over(self) -> None:
        print("\nmoving writes 2/5: cut-over (order writes: 100% to the order service)")
        self.writes_open(False)
        self.reload(self.service_name)
        _eventually("the two systems to agree", lambda: self.agree(IMPORT_GROUP))
        self.writes_open(True)
        print(f"  routes.yaml {WRITES_ROUTE}: split {{{self.service_name}: 100}}; writes open")

    def service_writes(self) -> list[int]:
        print("\nmoving writes 3/5: 10 orders created, 5 updated, 2 deleted through the gateway")
        before = self.sources().get("gateway", 0)
        with httpx.Client(base_url=self.gateway, timeout=10) as client:
            ids = [
                self.send(client, "POST", "/api/orders", {"customer": f"s{n}", "item": "cup"})["id"]
                for n in range(10)
            ]
            for i in ids[:5]:
                self.send(client, "PATCH", f"/api/orders/{i}", {"quantity": 2})
            for i in ids[-2:]:
                self.send(client, "DELETE", f"/api/orders/{i}")
        print(f"  ids from the service's claimed block: {ids}")
        _eventually("the reverse sync", lambda: self.agree(SYNC_GROUP))
        listed = {o["id"]: o for o in httpx.get(f"{self.legacy}/api/orders", timeout=5).json()}
        mine = {o["id"]: o for o in httpx.get(f"{self.service}/api/orders", timeout=5).json()}
        kept = ids[:-2]
        same = all(listed.get(i) == mine.get(i) for i in kept)
        print(f"  the monolith lists the {len(kept)} orders left, ids and timestamps alike: {same}")
        status = self.cli(
            "reverse-sync", "status", "--bootstrap", self.bootstrap, "--topic", self.topic,
            "--aggregate", "order", "--inbox", self.service_db,
        )  # fmt: skip
        print("  " + status.splitlines()[0] if status else "  reverse-sync status: no output")
        echoed = self.sources().get("gateway", 0) - before
        print(f"  events captured from the monolith meanwhile: {echoed} (no echo)")
        return kept

    def rollback(self) -> None:
        print("\nmoving writes 4/5: rollback (order writes: 100% to the monolith again)")
        self.writes_open(False)
        _eventually("the reverse sync", lambda: self.agree(SYNC_GROUP))
        self.reload("legacy")
        with httpx.Client(base_url=self.gateway, timeout=10) as client:
            ids = [
                self.send(client, "POST", "/api/orders", {"customer": f"r{n}", "item": "mug"})["id"]
                for n in range(5)
            ]
        print(f"  5 orders the monolith created, ids after the service's block: {ids}")
        _eventually("the import", lambda: self.agree(IMPORT_GROUP))

    def reconcile(self) -> None:
        print("\nmoving writes 5/5: strangler reconcile (monolith against the order service)")
        out = self.cli("reconcile", "--truth", f"{self.legacy}/api/orders", "--model",
                       f"{self.service}/api/orders", "--version-field", "updated_at")  # fmt: skip
        found = [line for line in out.splitlines() if line.startswith("found:")]
        print("  " + (found[0] if found else out.strip()))


def topic_of(config: Config) -> str:
    return str(config.kafka["topic"]).format(aggregate="order", type="Order")


def service_args(config: Config, listen: tuple[str, int], legacy: str, db: str) -> list[str]:
    """The order service: its read model on ``db``, its event store and outbox on the
    outbox's database (published by the demo's relay), ids claimed from ``legacy``."""
    return [
        "examples.order_service", "--host", listen[0], "--port", str(listen[1]), "--db", db,
        "--bootstrap", str(config.kafka["bootstrap"]), "--topic", topic_of(config),
        "--legacy", legacy, "--events", str(config.outbox["url"]), "--publish",
    ]  # fmt: skip


def sync_args(config: Config, legacy: str, service_db: str) -> list[str]:
    """``strangler reverse-sync run`` for the orders, applying to the monolith directly
    (started with the others: it has joined its group before the service writes)."""
    return [
        "gateway.cli", "reverse-sync", "run", "--bootstrap", str(config.kafka["bootstrap"]),
        "--topic", topic_of(config), "--aggregate", "order", "--source", "order-service",
        "--url", f"{legacy}/api/orders/{{id}}", "--upsert", "OrderCreated,OrderUpdated",
        "--delete", "OrderDeleted", "--inbox", service_db, "--delays", "0.2,0.5,1,2,5",
    ]  # fmt: skip


def run(journey: Journey) -> bool:
    """Every step; False (and why, printed) when one could not finish."""
    try:
        journey.dry_runs()
        journey.cut_over()
        journey.service_writes()
        journey.rollback()
        journey.reconcile()
    except WritesSkipped as exc:
        print(f"\nmoving writes: skipped ({exc})")
        return False
    except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        print(f"\nmoving writes: stopped: {exc}")
        return False
    return True


__all__ = [
    "Journey",
    "WritesSkipped",
    "moved",
    "run",
    "served_copy",
    "service_args",
    "sync_args",
    "topic_of",
    "write_parity",
]
