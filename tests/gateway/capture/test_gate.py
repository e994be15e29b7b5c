"""The capture gate: finds a route's rule, opens journaled tickets, and captures nothing
for a backend the rule does not cover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.capture.gate import CaptureGate
from gateway.capture.outbox import open_store
from gateway.capture.recorder import Recorder
from gateway.config import Route, parse
from gateway.http.exchange import Exchange

ROUTE: Route = parse(
    """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:9", legacy: true}
  v2: {url: "http://127.0.0.1:10"}
routes:
  - name: orders
    match: {prefix: /api/orders}
    split: {legacy: 1, v2: 1}
    capture:
      - {method: PUT, path: "/api/orders/{id}", event: OrderUpdated, aggregate: order,
         id: "path:id", payload: none}
"""
).routes[0]


@pytest.fixture
async def gate(tmp_path: Path) -> AsyncIterator[CaptureGate]:
    store = open_store(f"sqlite:///{tmp_path}/o.db")
    await store.init()
    recorder = Recorder(store, tmp_path / "spool")
    recorder.start()
    yield CaptureGate(recorder)
    await recorder.stop()
    await store.close()


def _exchange(backend: str) -> Exchange:
    return Exchange("orders", "PUT", "/api/orders/7", backend, 200, "r", {}, b"{}", {}, b"{}")


async def test_only_covered_requests_get_a_ticket(gate: CaptureGate) -> None:
    assert gate.wants(ROUTE, "PUT", "/api/orders/7")
    assert not gate.wants(ROUTE, "GET", "/api/orders/7")
    assert gate.begin(ROUTE, "POST", "/api/orders", "r0") is None


async def test_events_only_for_backends_the_rule_covers(gate: CaptureGate) -> None:
    ticket = gate.begin(ROUTE, "PUT", "/api/orders/7", "r1")
    assert ticket is not None
    await ticket.finish(_exchange("v2"))  # the new service served it: not a legacy write
    ticket = gate.begin(ROUTE, "PUT", "/api/orders/8", "r2")
    assert ticket is not None
    await ticket.finish(_exchange("legacy"))
    rows = await gate.recorder.store.pending(10)
    assert [r.event.aggregateid for r in rows] == ["8"]
