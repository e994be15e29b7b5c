"""The capture recorder: group commit, spooling through an outbox outage, draining in order,
adopting a dead worker's journal, and reject mode."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.gate import CaptureGate
from gateway.capture.journal import Journal
from gateway.capture.outbox import OutboxUnavailable, open_store
from gateway.capture.recorder import Recorder
from gateway.capture.rules import Doubt, Event, Exchange, compile_rules, find_rule
from gateway.config import Capture
from tests.eventually import eventually

RULES = compile_rules(
    (
        Capture(
            "PUT",
            "/api/orders/{id}",
            "OrderUpdated",
            "order",
            "path:id",
            backends=frozenset({"legacy"}),
        ),
    )
)


class Switchable:
    """An outbox store that can be made unreachable."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(self, events: Sequence[Event], doubts: Sequence[Doubt] = ()) -> None:
        if self.down:
            raise OutboxUnavailable("down for the test")
        await self.inner.append(events, doubts)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Recorder, Switchable]]:
    inner = open_store(f"sqlite:///{tmp_path}/outbox.db")
    await inner.init()
    store = Switchable(inner)
    recorder = Recorder(store, tmp_path / "spool")
    recorder.start()
    yield recorder, store
    await recorder.stop()
    await inner.close()


async def write(recorder: Recorder, n: int, status: int = 200) -> None:
    path = f"/api/orders/{n}"
    found = find_rule(RULES, "PUT", path, "legacy")
    assert found is not None
    ticket = recorder.begin(f"r{n}", "orders", "PUT", path, *found)
    exchange = Exchange("orders", "PUT", path, "legacy", status, f"r{n}", {}, b"{}", {}, b"{}")
    await recorder.finish(ticket, exchange)


async def ids(store: Switchable) -> list[str]:
    return [r.event.aggregateid for r in await store.inner.pending(1000)]


async def test_events_are_stored_before_finish_returns(setup: tuple[Recorder, Switchable]) -> None:
    recorder, store = setup
    await asyncio.gather(*(write(recorder, n) for n in range(1, 51)))
    await write(recorder, 99, status=404)  # not 2xx: no event
    assert await ids(store) == [str(n) for n in range(1, 51)]
    assert recorder.captured.get(("event",)) == 50 and recorder.captured.get(("none",)) == 1


async def test_outage_spools_and_drains_in_order(setup: tuple[Recorder, Switchable]) -> None:
    recorder, store = setup
    await write(recorder, 1)
    store.down = True
    for n in range(2, 6):
        await write(recorder, n)  # answers go out (fail-open)
    assert recorder.degraded and await ids(store) == ["1"]
    assert recorder.spooled.get() == 4 and recorder.backlog == 4
    store.down = False
    await write(recorder, 6)  # queued behind the spool, not ahead of it
    await eventually(lambda: recorder.backlog == 0, timeout=10)
    assert await ids(store) == ["1", "2", "3", "4", "5", "6"]
    assert not recorder.degraded and recorder.outbox_errors.get() >= 1


async def test_no_answer_after_sending_is_a_doubt(setup: tuple[Recorder, Switchable]) -> None:
    recorder, store = setup
    found = find_rule(RULES, "PUT", "/api/orders/5", "legacy")
    assert found is not None
    ticket = recorder.begin("r5", "orders", "PUT", "/api/orders/5", *found)
    await recorder.finish(ticket, None, "no answer from legacy: timeout")
    unsent = recorder.begin("r6", "orders", "PUT", "/api/orders/6", *found)
    await recorder.finish(unsent, None, "")  # connect failure: nothing happened
    doubts = await store.inner.doubts()
    assert [(d.request_id, d.reason) for d in doubts] == [("r5", "no answer from legacy: timeout")]


async def test_dead_workers_journal_is_adopted(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    dead = Journal(spool, "dead")
    dead.intent("x1", "orders", "PUT", "/api/orders/1", "OrderUpdated")
    dead.intent("x2", "orders", "PUT", "/api/orders/2", "OrderUpdated")
    dead.spool("x2", Event("e2", "order", "2", "OrderUpdated", {}, 1.0, {}))
    dead.close()  # the worker is gone: its lock is free
    store = open_store(f"sqlite:///{tmp_path}/outbox.db")
    await store.init()
    recorder = Recorder(store, spool)
    recorder.start()

    async def doubts() -> int:
        return (await store.status()).doubts

    await eventually(doubts, timeout=10, message="the dead worker's doubt adopted")
    await recorder.stop()
    assert [r.event.id for r in await store.pending(10)] == ["e2"]
    assert [d.request_id for d in await store.doubts()] == ["x1"]
    assert not (spool / "journal-dead.log").exists()
    await store.close()


async def test_reject_mode_refuses_while_degraded(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/outbox.db")
    recorder = Recorder(store, tmp_path / "spool", on_error="reject")
    assert not recorder.rejecting()
    recorder.degraded = True
    assert recorder.rejecting()
    recorder.journal.close()
    await store.close()


# --- drills with a real gateway, monolith and PostgreSQL --------------------------------


def monolith_order_ids(tmp: Path) -> set[str]:
    import sqlite3

    conn = sqlite3.connect(tmp / "legacy.db")
    try:
        return {str(r[0]) for r in conn.execute("SELECT id FROM orders")}
    finally:
        conn.close()


async def created_and_doubts(url: str) -> tuple[set[str], list[Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        created = {
            r[0]
            for r in await conn.fetch(
                "SELECT aggregateid FROM strangler_outbox WHERE type = 'OrderCreated'"
            )
        }
        doubts = list(
            await conn.fetch("SELECT request_id, method, path, reason FROM strangler_outbox_doubts")
        )
    finally:
        await conn.close()
    return created, doubts


@pytest.mark.postgres  # starts its own cluster, to stop it
async def test_outbox_outage_during_load_loses_no_captured_write(tmp_path: Path) -> None:
    from tests.gateway.support import capture_routes, gateway, monolith, write_orders
    from tests.harness import postgres_cluster

    with postgres_cluster() as cluster, monolith(tmp_path) as legacy:
        dsn = cluster.dsn
        text = capture_routes(legacy.url, dsn, tmp_path / "spool")
        with gateway(text) as (gw, proxy):
            gate = proxy.capture
            assert isinstance(gate, CaptureGate)
            recorder = gate.recorder
            load = asyncio.ensure_future(write_orders(gw.port, orders=150, updates=3, clients=6))
            await eventually(lambda: recorder.captured.get(("event",)) >= 20, timeout=30)
            cluster.stop_server()  # the outbox goes away mid-load ...
            await eventually(
                lambda: recorder.outbox_errors.get() >= 1 and recorder.spooled.get() > 0,
                timeout=30,
                message="the outage hitting the recorder (it spools)",
            )
            cluster.start_server()  # ... and comes back
            written = await load  # every request was answered 2xx: proxying continued
            await eventually(lambda: recorder.backlog == 0, timeout=30, interval=0.1)
        created, doubts = await created_and_doubts(dsn)
    assert len(written) == 150
    # Every request was answered, so every captured write has its event: none in doubt.
    assert monolith_order_ids(tmp_path) == created
    assert doubts == []


async def test_gateway_killed_during_load_leaves_events_or_doubts(
    tmp_path: Path, pg_database: str
) -> None:
    import signal

    from gateway.http.upstream import PooledTransport, UpstreamError, UpstreamRequest
    from tests.gateway.support import capture_routes, monolith, strangler_run

    with monolith(tmp_path) as legacy:
        text = capture_routes(legacy.url, pg_database, tmp_path / "spool")
        answered: list[int] = []

        async def hammer(port: int, stop: asyncio.Event) -> None:
            transport = PooledTransport()
            body = b'{"customer": "c", "item": "i"}'
            while not stop.is_set():
                request = UpstreamRequest(b"POST", b"/api/orders", [(b"host", b"gw")], body)
                try:
                    response = await transport.send("127.0.0.1", port, request, 1, 5, 8)
                    _ = [c async for c in response.chunks()]
                    answered.append(response.status)
                except UpstreamError:
                    await asyncio.sleep(0.01)
            await transport.aclose()

        with strangler_run(tmp_path, text) as gw:
            stop = asyncio.Event()
            clients = [asyncio.ensure_future(hammer(gw.port, stop)) for _ in range(8)]
            await eventually(lambda: len(answered) > 100, timeout=30, message="load under way")
            worker = [
                int(p)
                for p in Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children")
                .read_text()
                .split()
            ]
            for pid in [gw.proc.pid, *worker]:
                os.kill(pid, signal.SIGKILL)  # the whole gateway dies, mid-load
            gw.proc.wait()
            stop.set()
            await asyncio.gather(*clients)
        assert len(answered) > 50
        # A new gateway on the same spool adopts the dead worker's journal.
        # Its graceful stop stores what it adopted (the spool drains before it exits).
        orphans = list((tmp_path / "spool").glob("journal-*.log"))
        assert orphans
        with strangler_run(tmp_path, text):
            await eventually(
                lambda: not any(path.exists() for path in orphans),
                timeout=10,
                interval=0.1,
                message=f"the new gateway adopting (and removing) {orphans}",
            )
        created, doubts = await created_and_doubts(pg_database)
    rows = monolith_order_ids(tmp_path)
    assert created <= rows
    missing = rows - created
    assert len(missing) <= len(doubts), (len(missing), len(doubts))


async def test_a_reused_request_id_loses_no_captured_write(
    setup: tuple[Recorder, Switchable],
) -> None:
    """Clients choose X-Request-Id: two writes sent with one id stay two events through an
    outbox outage, and two writes that end in doubt stay two doubts."""
    recorder, store = setup
    store.down = True
    for n, body in ((1, b"{}"), (2, b"{}"), (3, None), (4, None)):  # None: too large to keep
        path = f"/api/orders/{n}"
        found = find_rule(RULES, "PUT", path, "legacy")
        assert found is not None
        ticket = recorder.begin("same-id", "orders", "PUT", path, *found)
        exchange = Exchange("orders", "PUT", path, "legacy", 200, "same-id", {}, body, {}, b"{}")
        await recorder.finish(ticket, exchange)
    assert recorder.backlog == 4
    store.down = False
    await eventually(lambda: recorder.backlog == 0, timeout=10)
    assert await ids(store) == ["1", "2"]
    doubts = await store.inner.doubts()
    assert [(d.path, d.request_id) for d in doubts] == [
        ("/api/orders/3", "same-id"),
        ("/api/orders/4", "same-id"),
    ]
    assert len({d.capture_id for d in doubts}) == 2


async def test_a_dead_workers_intents_with_one_request_id_are_each_a_doubt(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    dead = Journal(spool, "dead")
    dead.intent("c1", "orders", "PUT", "/api/orders/1", "OrderUpdated", request_id="same")
    dead.intent("c2", "orders", "PUT", "/api/orders/2", "OrderUpdated", request_id="same")
    dead.close()
    store = open_store(f"sqlite:///{tmp_path}/outbox.db")
    await store.init()
    recorder = Recorder(store, spool)
    recorder.start()

    async def doubts() -> bool:
        return (await store.status()).doubts == 2

    await eventually(doubts, timeout=10, message="both of the dead worker's intents adopted")
    await recorder.stop()
    assert [(d.path, d.request_id) for d in await store.doubts()] == [
        ("/api/orders/1", "same"),
        ("/api/orders/2", "same"),
    ]
    await store.close()


async def test_leading_zero_ids_are_captured_as_the_monolith_reads_them(tmp_path: Path) -> None:
    import httpx

    from tests.gateway.support import capture_routes, gateway, monolith

    url = f"sqlite:///{tmp_path}/outbox.db"
    with monolith(tmp_path) as legacy:
        with gateway(capture_routes(legacy.url, url, tmp_path / "spool")) as (gw, _):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as client:
                created = await client.post(
                    "/api/orders", json={"customer": "c", "item": "book", "quantity": 1}
                )
                order = created.json()["id"]
                patched = await client.patch(f"/api/orders/00{order}", json={"quantity": 2})
                assert patched.status_code == 200 and patched.json()["id"] == order
    store = open_store(url)
    rows = await store.pending(10)
    await store.close()
    assert [(r.event.type, r.event.aggregateid) for r in rows] == [
        ("OrderCreated", str(order)),
        ("OrderUpdated", str(order)),
    ]
