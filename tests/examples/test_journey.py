"""The whole migration journey on real services: writes through the gateway to the legacy
monolith, captured into the PostgreSQL outbox, relayed to the broker, consumed by the new
order service into its PostgreSQL read model; reads shadowed and compared; the consumer
killed mid-stream; the read model damaged and reconciled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from examples.order_service.app import create_app
from gateway.cli import main
from shadow.report import build
from shadow.store import Result, open_store
from strangler_events.database import open_database
from strangler_events.envelope import Event, encode
from tests.eventually import eventually
from tests.gateway.support import fire, gateway, monolith, write_orders
from tests.harness import UvicornThread, free_port, wait_for_port


def routes(legacy: str, service: str, dsn: str, bootstrap: str, topic: str, tmp: Path) -> str:
    return f"""\
version: 1
backends:
  legacy: {{url: "{legacy}", legacy: true}}
  order-service: {{url: "{service}"}}
routes:
  - name: orders-reads
    match: {{prefix: /api/orders, methods: [GET]}}
    split: {{legacy: 100}}
    shadow: {{backend: order-service, percent: 100}}
  - name: orders-writes
    match: {{prefix: /api/orders}}
    split: {{legacy: 100}}
    capture:
      - {{method: POST, path: /api/orders, event: OrderCreated, aggregate: order,
          id: "response:/id"}}
      - {{method: PATCH, path: "/api/orders/{{id}}", event: OrderUpdated, aggregate: order,
          id: "path:id"}}
      - {{method: DELETE, path: "/api/orders/{{id}}", event: OrderDeleted, aggregate: order,
          id: "path:id", payload: none}}
outbox: {{url: "{dsn}", spool: "{tmp}/spool"}}
kafka: {{bootstrap: "{bootstrap}", topic: "{topic}"}}
shadow_store: {{url: "sqlite:///{tmp}/shadow.db"}}
"""


@dataclass
class Journey:
    gateway_port: int
    legacy: str
    service: str
    service_db: str
    tmp: Path


@contextmanager
def journey(tmp: Path, dsn: str, bootstrap: str) -> Iterator[Journey]:
    """Monolith, order service (read model on ``dsn``), relay and gateway, all running."""
    topic_template = f"j{uuid.uuid4().hex[:8]}.{{aggregate}}"
    topic = topic_template.format(aggregate="order")
    app = create_app(dsn, bootstrap, topic)
    with monolith(tmp) as legacy, UvicornThread(app, lifespan="on") as service:
        text = routes(legacy.url, service.url, dsn, bootstrap, topic_template, tmp)
        config = tmp / "routes.yaml"
        config.write_text(text)
        relay = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "outbox", "relay", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with gateway(text) as (server, _):
                yield Journey(server.port, legacy.url, service.url, dsn, tmp)
        finally:
            relay.terminate()
            relay.wait(20)


async def caught_up(legacy: str, service: str, timeout: float = 90.0) -> list[dict[str, Any]]:
    """The service's order list once it equals the monolith's (and is not empty)."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def same() -> list[dict[str, Any]]:
            want = (await client.get(f"{legacy}/api/orders")).json()
            got = (await client.get(f"{service}/api/orders")).json()
            if got != want:
                raise AssertionError(f"not caught up: {len(got)} of {len(want)} orders")
            return list(want)

        return await eventually(
            same,
            timeout=timeout,
            interval=0.3,
            message="the service's orders to equal the monolith's",
        )


async def consumer_lags(port: int) -> list[float]:
    """The service's ``strangler_consumer_lag`` values, one per partition it has read."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "strangler_consumer_lag"
    ]


async def test_500_writes_reach_the_read_model_and_shadow_reads_all_match(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    with journey(tmp_path, pg_database, kafka_bootstrap) as j:
        written = await write_orders(j.gateway_port, orders=100, updates=4)  # 100 POST + 400 PATCH
        orders = await caught_up(j.legacy, j.service)
        assert len(orders) == 100 and all(o["quantity"] == 4 for o in orders)
        async with httpx.AsyncClient(timeout=10) as client:
            for ident, _ in written:  # every order through both APIs
                legacy = (await client.get(f"{j.legacy}/api/orders/{ident}")).json()
                new = (await client.get(f"{j.service}/api/orders/{ident}")).json()
                assert new == legacy
            scrape = await client.get(f"{j.service}/metrics")  # the consumer's own metrics
        assert scrape.headers["content-type"].startswith("text/plain; version=")
        processed = {
            s.labels["type"]: s.value
            for family in text_string_to_metric_families(scrape.text)
            for s in family.samples
            if s.name == "strangler_consumer_processed_total"
            and s.labels["consumer"] == "order-service"  # the read model's (not the import's)
        }
        assert processed["OrderCreated"] >= 100 and processed["OrderUpdated"] >= 400
        reads: list[tuple[str, str, list[tuple[bytes, bytes]]]] = [
            ("GET", f"/api/orders/{ident}", []) for ident, _ in written
        ]
        reads.append(("GET", "/api/orders", []))
        replies = await fire(j.gateway_port, reads, concurrency=4)
        assert {r.status for r in replies} == {200}
        store = open_store(f"sqlite:///{tmp_path}/shadow.db")

        async def all_compared() -> list[Result]:
            results = await store.results()
            return results if sum(r.outcome == "compared" for r in results) >= 101 else []

        results = await eventually(
            all_compared, timeout=20, interval=0.2, message="101 compared shadow results stored"
        )
        await store.close()
    report = build(results)
    endpoints = {(e.endpoint, e.compared, e.matched, e.differing) for e in report.endpoints}
    assert endpoints == {("/api/orders/{id}", 100, 100, 0), ("/api/orders", 1, 1, 0)}


def order_events(orders: int, updates: int) -> list[Event]:
    """What the relay publishes for ``orders`` orders each updated ``updates`` times."""
    out = []
    for n in range(1, orders + 1):
        order = {
            "id": n,
            "customer": f"c{n}",
            "item": "book",
            "quantity": 0,
            "status": "new",
            "created_at": "2026-01-01T00:00:00",
            "updated_at": "2026-01-01T00:00:00",
        }
        out.append(
            Event(
                str(uuid.uuid4()),
                "OrderCreated",
                "order",
                str(n),
                {"request": {}, "response": dict(order)},
            )
        )
        for q in range(1, updates + 1):
            order = {**order, "quantity": q, "updated_at": f"2026-01-01T00:00:{q:02d}"}
            out.append(
                Event(
                    str(uuid.uuid4()),
                    "OrderUpdated",
                    "order",
                    str(n),
                    {"request": {"quantity": q}, "response": dict(order)},
                )
            )
    return out


def service_process(port: int, dsn: str, bootstrap: str, topic: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.order_service",
            "--port",
            str(port),
            "--db",
            dsn,
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def read_model(dsn: str) -> dict[int, tuple[int, int]]:
    """order id -> (quantity, events applied)."""
    db = open_database(dsn)
    try:
        async with db.transaction() as tx:
            rows = await tx.fetch("SELECT id, quantity, applied FROM orders_read")
    except Exception:
        rows = []
    finally:
        await db.close()
    return {int(i): (int(q), int(a)) for i, q, a in rows}


async def test_consumer_killed_mid_stream_resumes_without_double_effects(
    pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"k{uuid.uuid4().hex[:8]}.order"
    events = order_events(100, 4)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send(topic, encode(e), key=e.aggregateid.encode())
        await producer.flush()
    finally:
        await producer.stop()
    port = free_port()
    proc = service_process(port, pg_database, kafka_bootstrap, topic)
    try:
        wait_for_port("127.0.0.1", port, 20, proc)

        async def progressed() -> bool:
            return sum(a for _, a in (await read_model(pg_database)).values()) >= 100

        await eventually(progressed, timeout=60, interval=0.05, message="100 events applied")
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: some events applied, most not
        proc.wait(10)
        partial = sum(a for _, a in (await read_model(pg_database)).values())
        assert 100 <= partial < 500, partial
        proc = service_process(port, pg_database, kafka_bootstrap, topic)

        async def complete() -> bool:
            model = await read_model(pg_database)
            if not (len(model) == 100 and all(a >= 5 for _, a in model.values())):
                raise AssertionError(f"not complete: {len(model)} orders")
            # Read to the end of every partition: nothing left that could apply twice.
            lags = await consumer_lags(port)
            return bool(lags) and not any(lags)

        await eventually(
            complete, timeout=90, interval=0.2, message="the whole topic consumed and applied"
        )
        model = await read_model(pg_database)
        assert model == {n: (4, 5) for n in range(1, 101)}  # complete, each event applied once
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_reconciliation_finds_and_repairs_a_damaged_read_model(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    with journey(tmp_path, pg_database, kafka_bootstrap) as j:
        await write_orders(j.gateway_port, orders=40, updates=1)
        await caught_up(j.legacy, j.service)
        db = open_database(j.service_db)
        async with db.transaction() as tx:
            for n in range(1, 11):  # corrupt 10 rows, leaving their version alone
                await tx.execute("UPDATE orders_read SET quantity = 999 WHERE id = ?", n)
            for n in range(21, 26):  # and lose 5
                await tx.execute("DELETE FROM orders_read WHERE id = ?", n)
        await db.close()
        args = [
            "reconcile",
            "--truth",
            f"{j.legacy}/api/orders",
            "--model",
            f"{j.service}/api/orders",
            "--version-field",
            "updated_at",
            "--format",
            "json",
        ]
        repair = ["--repair", f"{j.service}/admin/reproject/{{id}}"]
        code, out = await run_cli([*args, *repair])
        assert code == 0, out
        assert out["before"] == {"missing": 5, "stale": 0, "different": 10, "extra": 0}
        assert out["repaired"] == 15
        assert out["after"] == {"missing": 0, "stale": 0, "different": 0, "extra": 0}
        code, out = await run_cli(args)
        assert code == 0 and out["before"] == {"missing": 0, "stale": 0, "different": 0, "extra": 0}


async def run_cli(args: list[str]) -> tuple[int, dict[str, Any]]:
    import contextlib
    import io
    import json

    buffer = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(buffer):
            return main(args)

    code = await asyncio.to_thread(run)
    return code, json.loads(buffer.getvalue())
