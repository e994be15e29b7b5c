"""Order writes moved to the service and back under write load, on real services: clients
keep writing through the real gateway while routes.yaml is reloaded, legacy -> service ->
legacy, with the reverse sync keeping the monolith current.  No acknowledged write is
lost or applied twice, and ``strangler reconcile`` finds no difference at the end.

The switch (what happens to requests in flight): writes move at once.  First the
service's writes are closed (it answers 503 with Retry-After, changing nothing), then
the routes are reloaded -- requests in flight finish on the old routes, new ones go to
the new writer; the switch waits for a moment with no request in flight, so that every
write sent on the old routes has finished -- and then for the two systems to agree: the monolith and
the service's read model the same (``reconcile``), and the service's import of
captured writes (cut-over) or its reverse sync (rollback) read to the end of the topic.
Only then does the new writer take writes: the service's are opened after a cut-over;
for a rollback the routes are reloaded only then (the monolith cannot be closed), and the
service's writes stay closed.  Clients see a short run of 503s, which they retry."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from examples.order_service.order import Order
from gateway.capture.outbox import open_store as open_outbox
from gateway.cli import main
from gateway.tasks import spawn
from strangler_events.database import Database, open_database
from strangler_events.eventstore import open_event_store
from strangler_events.reconcile import reconcile
from strangler_events.repository import Repository
from strangler_events.reverse_sync.runner import ReverseSync, lag
from tests.eventually import GiveUp, eventually
from tests.examples.test_moving_writes import sync_applied
from tests.examples.write_support import Writes, moving_writes, stored_events
from tests.harness import Broker
from tests.strangler_events.reverse_sync.support import target

UPDATES = 4  # per order, after its create


@dataclass
class Load:
    """Clients that create orders and update each one ``UPDATES`` times, in sequence,
    retrying a 503 (closed writes: nothing changed); what was acknowledged."""

    port: int
    acked: dict[int, int] = field(default_factory=dict)  # order id -> last quantity
    writes: int = 0  # acknowledged (2xx)
    retried: int = 0  # 503s retried
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: per order, each acknowledged write: (monotonic time, method, quantity, backend, 503s)
    history: dict[int, list[tuple[float, str, int, str, int]]] = field(default_factory=dict)
    phases: list[tuple[float, str]] = field(default_factory=list)  # (time, what happened)

    async def client(self, n: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as c:
            k = 0
            while not self.stop.is_set():
                body = {"customer": f"c{n}-{k}", "item": "x", "quantity": 0}
                ident = (await self.write(c, "POST", "/api/orders", body))["id"]
                self.acked[ident] = 0
                for q in range(1, UPDATES + 1):
                    await self.write(c, "PATCH", f"/api/orders/{ident}", {"quantity": q})
                    self.acked[ident] = q
                k += 1

    async def write(
        self, client: httpx.AsyncClient, method: str, path: str, body: Any
    ) -> dict[str, Any]:
        refused = 0
        while True:
            reply = await client.request(method, path, json=body)
            if reply.status_code == 503:
                self.retried += 1
                refused += 1
                await asyncio.sleep(0.05)  # the client's back-off, as Retry-After asks
                continue
            assert reply.status_code in (200, 201), f"{method} {path}: {reply.text}"
            self.writes += 1
            result: dict[str, Any] = reply.json()
            backend = reply.headers.get("x-strangler-backend", "?")
            self.history.setdefault(result["id"], []).append(
                (time.monotonic(), method, result["quantity"], backend, refused)
            )
            return result

    def note(self, what: str) -> None:
        self.phases.append((time.monotonic(), what))

    async def orders(self, at_least: int, clients: list[asyncio.Task[None]]) -> None:
        def enough() -> bool:
            failed = [t.exception() for t in clients if t.done() and not t.cancelled()]
            if any(failed):
                raise GiveUp(f"a load client failed: {failed}")
            return len(self.acked) >= at_least

        await eventually(enough, timeout=120, interval=0.1, message="orders")


async def agree(w: Writes, db: Database, groups: tuple[str, ...]) -> None:
    """Wait until every write is published (the outbox, which the gateway's capture and the
    service's event store share here, has nothing pending), the consumers ``groups`` have
    read the topic to its end, and the monolith and the service's read model hold the
    same orders."""
    outbox = open_outbox(w.dsn)

    async def same() -> bool:
        pending = len(await outbox.pending(100))
        behind = [p for g in groups for p in await lag(w.bootstrap, [w.topic], db, g)]
        found = await reconcile(
            f"{w.legacy}/api/orders", f"{w.service}/api/orders", "id", "updated_at"
        )
        if pending or any(p.lag for p in behind) or found.before.total:
            raise AssertionError(
                f"outbox pending {pending}, lag {[p.lag for p in behind]}, "
                f"differences {found.before.counts()}"
            )
        return True

    try:
        await eventually(same, timeout=120, interval=0.3, message="the two systems to agree")
    finally:
        await outbox.close()


async def switch(w: Writes, db: Database, writer: str, groups: tuple[str, ...], load: Load) -> None:
    """Move the order writes to ``writer``: the service's writes close (503, nothing
    changes); a cut-over reloads the routes at once (the service stays closed) and opens
    the service once the two agree; a rollback waits for them to agree first (the
    monolith has no gate) and then reloads."""
    in_flight = w.proxy.metrics.in_flight

    async def settled() -> None:
        # requests in flight on the old routes finish first: a moment with none in flight
        await eventually(lambda: in_flight.get() == 0, timeout=30, message="none in flight")
        load.note(f"{writer}: none in flight")
        await agree(w, db, groups)
        load.note(f"{writer}: agreed")

    async with httpx.AsyncClient(base_url=w.service) as client:
        await client.post("/admin/writes", json={"open": False})
        load.note(f"{writer}: service writes closed")
        if writer == "order-service":
            w.reload(writer, shadow_writes=False)
            load.note(f"{writer}: reloaded")
            await settled()
            await client.post("/admin/writes", json={"open": True})
            load.note(f"{writer}: service writes opened")
        else:
            await settled()
            w.reload(writer, shadow_writes=False)
            load.note(f"{writer}: reloaded")


async def run_reconcile(w: Writes) -> tuple[int, dict[str, Any]]:
    args = ["reconcile", "--truth", f"{w.legacy}/api/orders", "--model"]
    args += [f"{w.service}/api/orders", "--version-field", "updated_at", "--format", "json"]
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(args)

    code = await asyncio.to_thread(run)
    return code, json.loads(out.getvalue())


def explain(
    load: Load,
    monolith: dict[int, dict[str, Any]],
    events: list[Any],
    suspects: set[int],
    start: float,
) -> None:
    """What a failure needs to be understood: the switch's steps, and for each order that
    differs, its acknowledged writes and its events in the service's store."""
    if not suspects:
        return
    for at, what in load.phases:
        print(f"  {at - start:8.3f}s  {what}")
    for i in sorted(suspects):
        print(f"order {i}: acked {load.acked.get(i)}, monolith {monolith.get(i)}")
        for at, method, quantity, backend, refused in load.history.get(i, []):
            print(f"  {at - start:8.3f}s  {method} q={quantity} by {backend} after {refused} 503s")
        for e in events:
            if e.stream == f"order-{i}":
                response = e.data.get("response") or {}
                print(
                    f"  v{e.version} {e.type} q={response.get('quantity')} "
                    f"updated_at={response.get('updated_at')} {e.metadata}"
                )


async def aggregates(dsn: str, ids: list[int]) -> dict[int, dict[str, Any] | None]:
    store = open_event_store(dsn)
    try:
        orders = Repository(store, Order, "order")
        return {i: (await orders.load(str(i))).order for i in ids}
    finally:
        await store.close()


async def test_round_trip_under_write_load_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, pg_database: str, own_broker: Broker
) -> None:
    kafka_bootstrap = own_broker.bootstrap
    with moving_writes(
        tmp_path, pg_database, kafka_bootstrap, publish=True, shadow_writes=False
    ) as w:
        db = open_database(pg_database)
        sync = ReverseSync(kafka_bootstrap, [w.topic], target(w.legacy), db, delays=(0.2, 1, 2, 5))
        await sync.start()
        syncing = spawn(sync.run(), name="reverse-sync")
        load = Load(w.gateway_port)
        clients = [spawn(load.client(n), name=f"load-{n}") for n in range(6)]
        phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("cut-over", lambda: switch(w, db, "order-service", ("order-service-import",), load)),
            ("rollback", lambda: switch(w, db, "legacy", ("reverse-sync-order",), load)),
        ]
        start = time.monotonic()
        try:
            await load.orders(30, clients)  # on the monolith
            for _, phase in phases:
                await phase()
                await load.orders(len(load.acked) + 60, clients)
            load.stop.set()
            await asyncio.gather(*clients)
            await agree(w, db, ("order-service-import", "reverse-sync-order"))
            code, report = await run_reconcile(w)
            async with httpx.AsyncClient() as client:
                monolith = {o["id"]: o for o in (await client.get(f"{w.legacy}/api/orders")).json()}
            events = await stored_events(pg_database)
            applied = await sync_applied(str(tmp_path / "legacy.db"))
            states = await aggregates(pg_database, sorted(load.acked))
        finally:
            load.stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            await sync.stop()
            await syncing
            await db.close()
    service_events = [e for e in events if e.metadata.get("source") == "order-service"]
    lost = [i for i, q in load.acked.items() if monolith.get(i, {}).get("quantity") != q]
    print(
        f"\nload: writes {load.writes} (503s retried {load.retried}), orders {len(load.acked)},"
        f" events {len(events)} (service {len(service_events)}, imported"
        f" {len(events) - len(service_events)}), applied in the monolith {applied},"
        f" lost {len(lost)}, duplicated {len(events) - load.writes}"
    )
    suspects = set(lost) | {i for i, o in states.items() if o != monolith.get(i)}
    explain(load, monolith, events, suspects, start)
    assert code == 0 and report["before"] == {"missing": 0, "stale": 0, "different": 0, "extra": 0}
    assert lost == []  # every acknowledged write is in the monolith's final state
    assert len(events) == load.writes  # one event per acknowledged write: none lost, none twice
    assert applied == len(service_events) > 0  # each service write applied once in the monolith
    assert len(events) > len(service_events) > 0  # both writers wrote
    assert sorted(monolith) == sorted(load.acked)
    for ident, order in states.items():  # the aggregates took the monolith's writes back
        assert order == monolith[ident], ident
