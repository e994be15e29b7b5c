"""Moving order writes off the monolith, on real services: the real gateway, the real
monolith, the order service on real PostgreSQL, the relay and the real broker.

Write parity: order writes go to the monolith and are shadowed to the service as dry
runs; the shadow report says per endpoint whether they behave the same, and the
service commits none of them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main
from gateway.tasks import spawn
from shadow.report import build
from shadow.store import Result, open_store
from strangler_events.database import open_database
from strangler_events.reverse_sync.http import HttpWriter
from strangler_events.reverse_sync.runner import ReverseSync
from tests.eventually import eventually
from tests.examples.write_support import (
    Writes,
    imported,
    moving_writes,
    send,
    stored_events,
)
from tests.gateway.support import config_text, gateway
from tests.harness import Broker
from tests.strangler_events.reverse_sync.support import target


async def shadow_results(tmp: Path, count: int) -> list[Result]:
    store = open_store(f"sqlite:///{tmp}/shadow.db")

    async def enough() -> list[Result]:
        rows = await store.results()
        done = sum(r.count for r in rows if r.outcome == "compared")
        if done < count:
            raise AssertionError(f"{done} of {count} shadowed writes compared")
        return rows

    try:
        return await eventually(enough, timeout=30, interval=0.2, message="shadow results")
    finally:
        await store.close()


async def test_shadowed_writes_are_dry_runs_whose_parity_the_report_shows(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    with moving_writes(tmp_path, pg_database, kafka_bootstrap) as w:
        ids = []
        for n in range(20):
            made = await send(
                w.gateway_port, "POST", "/api/orders", {"customer": f"c{n}", "item": "x"}
            )
            assert made.status_code == 201
            ids.append(made.json()["id"])
        for body in ({"item": "x"}, {"customer": "c", "item": "x", "colour": "red"}, [1]):
            assert (await send(w.gateway_port, "POST", "/api/orders", body)).status_code == 422
        # the service decides on the monolith's state: wait until it has every order
        await imported(w.dsn, 20)
        writes: list[tuple[str, str, Any]] = [
            ("PATCH", f"/api/orders/{i}", {"status": "paid", "quantity": 3}) for i in ids[:10]
        ]
        writes += [("PUT", f"/api/orders/{i}", {"customer": "z", "item": "y"}) for i in ids[10:15]]
        writes += [("DELETE", f"/api/orders/{i}", None) for i in ids[15:]]
        writes += [
            ("PATCH", "/api/orders/999999", {"status": "x"}),
            ("PUT", f"/api/orders/{ids[0]}", {}),
        ]
        replies = await asyncio.gather(*(send(w.gateway_port, m, p, b) for m, p, b in writes))
        assert [r.status_code for r in replies] == [200] * 15 + [204] * 5 + [404, 422]
        rows = await shadow_results(tmp_path, 45)
        events = await imported(w.dsn, 40)  # 20 created, 15 updated, 5 deleted, imported
        async with httpx.AsyncClient() as client:
            legacy = (await client.get(f"{w.legacy}/api/orders")).json()
    report = {(e.method, e.endpoint): e for e in build(rows).endpoints}
    summary = {k: (e.compared, e.matched, e.write_parity) for k, e in report.items()}
    assert summary == {
        ("POST", "/api/orders"): (23, 23, "same"),
        ("PATCH", "/api/orders/{id}"): (11, 11, "same"),
        ("PUT", "/api/orders/{id}"): (6, 6, "same"),
        ("DELETE", "/api/orders/{id}"): (5, 5, "same"),
    }
    # the dry runs committed nothing: every stored event is an imported monolith write,
    # no id block was claimed, and the monolith has exactly its own 15 orders
    assert len(events) == 40 and {e.metadata["source"] for e in events} == {"gateway"}
    assert [o["id"] for o in legacy] == ids[:15]
    assert await claimed_blocks(w.dsn) == 0


async def claimed_blocks(dsn: str) -> int:
    db = open_database(dsn)
    try:
        async with db.transaction() as tx:
            [(count,)] = await tx.fetch("SELECT count(*) FROM order_id_blocks")
    finally:
        await db.close()
    return int(count)


async def test_a_marked_write_is_never_committed_even_as_the_primary(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    """A routing mistake sends dry-run writes to the service as the primary: it answers
    them, but stores nothing and takes no id.  A client cannot send the marker through
    the gateway: the gateway removes it, so a client's marked write is committed."""
    with moving_writes(tmp_path, pg_database, kafka_bootstrap) as w:
        text = config_text(
            {"legacy": w.legacy, "order-service": w.service},
            "  - name: orders\n    match: {prefix: /api/orders}\n    split: {order-service: 100}\n",
        )
        dry = {"x-strangler-dry-run": "1"}
        async with httpx.AsyncClient(base_url=w.service, timeout=10) as direct:
            made = await direct.post(
                "/api/orders", json={"customer": "a", "item": "b"}, headers=dry
            )
            assert made.status_code == 201
            patched = await direct.patch("/api/orders/1", json={"status": "x"}, headers=dry)
            assert patched.status_code == 404
            assert await stored_events(w.dsn) == [] and await claimed_blocks(w.dsn) == 0
            with gateway(text) as (server, _):
                forged = {**dry, "x-strangler-shadow": "1"}
                real = await send(
                    server.port, "POST", "/api/orders", {"customer": "a", "item": "b"}, **forged
                )
            assert real.status_code == 201
            patched = await direct.patch(
                f"/api/orders/{real.json()['id']}", json={"status": "x"}, headers=dry
            )
            assert patched.status_code == 200 and patched.json()["status"] == "x"
        events = await stored_events(w.dsn)
    assert [(e.type, e.data["response"]["status"]) for e in events] == [("OrderCreated", "new")]


# --- after cut-over: reverse sync, and no echo ----------------------------------------


async def sync_applied(legacy_db: str) -> int:
    """The changes the reverse sync applied in the monolith (its recorded event ids)."""
    url = legacy_db if "://" in legacy_db else f"sqlite:///{legacy_db}"
    db = open_database(url)
    try:
        async with db.transaction() as tx:
            [(count,)] = await tx.fetch("SELECT count(*) FROM strangler_sync_applied")
    finally:
        await db.close()
    return int(count)


async def outbox_rows(dsn: str) -> dict[str, int]:
    """The outbox's rows by aggregate type and state (what a stuck wait needs to say)."""
    db = open_database(dsn)
    try:
        async with db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT aggregatetype, published_at IS NULL, count(*) FROM strangler_outbox"
                " GROUP BY 1, 2"
            )
    finally:
        await db.close()
    return {f"{kind}/{'pending' if pending else 'published'}": int(n) for kind, pending, n in rows}


async def import_lag(service: str) -> list[float]:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{service}/metrics")).text
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "strangler_consumer_lag" and s.labels["consumer"] == "order-service-import"
    ]


async def writes_after_cut_over(port: int) -> tuple[int, list[int]]:
    """10 creates, 10 updates, 3 replacements, 2 deletes through the gateway; their count
    and the ids left."""
    ids = []
    for n in range(10):
        made = await send(port, "POST", "/api/orders", {"customer": f"n{n}", "item": "x"})
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    for i in ids:
        assert (
            await send(port, "PATCH", f"/api/orders/{i}", {"status": "paid"})
        ).status_code == 200
    for i in ids[:3]:
        replaced = await send(port, "PUT", f"/api/orders/{i}", {"customer": "r", "item": "y"})
        assert replaced.status_code == 200
    for i in ids[-2:]:
        assert (await send(port, "DELETE", f"/api/orders/{i}")).status_code == 204
    return 25, ids[:-2]


async def no_echo(
    w: Writes, legacy_db: str, sync_url: str, sentinel: Any, token: str | None = None
) -> None:
    """N writes after cut-over give exactly N events in the service's store and N applied
    changes in the monolith; then one legacy write (``sentinel``) is captured and imported
    once, which shows that the capture path works and that everything before it was seen.
    Through the gateway the reverse sync sends ``token``, its proof of origin."""
    database = open_database(w.dsn)
    writer = HttpWriter(origin_token=token)
    sync = ReverseSync(
        w.bootstrap, [w.topic], target(sync_url), database, delays=(0.2, 1, 2, 5), writer=writer
    )
    await sync.start()
    running = spawn(sync.run(), name="reverse-sync")
    try:
        n, left = await writes_after_cut_over(w.gateway_port)

        async def all_applied() -> bool:
            if await sync_applied(legacy_db) < n:
                raise AssertionError(f"{await sync_applied(legacy_db)} of {n} applied")
            return True

        await eventually(all_applied, timeout=60, interval=0.2, message=f"{n} changes applied")
        await sentinel()

        async def settled() -> bool:
            events = await stored_events(w.dsn)
            legacy = [e for e in events if e.metadata.get("source") != "order-service"]
            lags = await import_lag(w.service)
            if not legacy or any(lags):
                raise AssertionError(
                    f"{len(legacy)} legacy events imported, lag {lags}; "
                    f"outbox {await outbox_rows(w.dsn)}; "
                    f"threads {sorted(t.name for t in threading.enumerate())}"
                )
            return True

        await eventually(settled, timeout=60, interval=0.3, message="the sentinel imported")
        events = await stored_events(w.dsn)
        async with httpx.AsyncClient() as client:
            listed = (await client.get(f"{w.legacy}/api/orders")).json()
    finally:
        await sync.stop()
        await running
        await database.close()
    mine = [e for e in events if e.metadata.get("source") == "order-service"]
    assert len(mine) == n  # N writes, N events
    assert len(events) == n + 1  # and the sentinel: no echo came back
    assert await sync_applied(legacy_db) == n  # N applied changes in the monolith
    assert sorted(o["id"] for o in listed if o["customer"] != "sentinel") == sorted(left)


async def test_no_echo_through_the_gateways_capture(
    tmp_path: Path, pg_database: str, own_broker: Broker
) -> None:
    """The reverse sync writes through the gateway (the monolith is reachable only there),
    on a route with the capture rules, with the gateway's origin token: its writes are not
    captured."""
    with moving_writes(
        tmp_path, pg_database, own_broker.bootstrap, writer="order-service", publish=True
    ) as w:
        gateway_url = f"http://127.0.0.1:{w.gateway_port}"

        async def sentinel() -> None:
            job = {"x-legacy-job": "1"}
            made = await send(w.gateway_port, "POST", "/api/orders", SENTINEL, **job)
            assert made.status_code == 201

        await no_echo(w, str(tmp_path / "legacy.db"), gateway_url, sentinel, w.origin_token)


async def test_no_echo_through_the_database_triggers(
    tmp_path: Path, pg_database: str, own_broker: Broker
) -> None:
    """The monolith's writes are captured by triggers on its PostgreSQL table (the outbox
    in the same database); the reverse sync's writes set strangler.origin: no row."""
    with moving_writes(
        tmp_path,
        pg_database,
        own_broker.bootstrap,
        writer="order-service",
        publish=True,
        legacy_db=pg_database,
    ) as w:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{w.legacy}/api/orders")).status_code == 200  # tables
        install = ["outbox", "install-triggers", "--dsn", pg_database, "--table", "orders"]
        assert await asyncio.to_thread(main, [*install, "--aggregate", "order"]) == 0

        async def sentinel() -> None:  # a legacy job the gateway never sees
            async with httpx.AsyncClient() as client:
                made = await client.post(f"{w.legacy}/api/orders", json=SENTINEL)
            assert made.status_code == 201

        await no_echo(w, pg_database, w.legacy, sentinel)


SENTINEL = {"customer": "sentinel", "item": "job"}
