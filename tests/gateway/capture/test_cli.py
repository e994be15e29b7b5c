"""``strangler outbox`` commands against an SQLite outbox, and the relay's /metrics endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.capture.cli import _metrics_server
from gateway.capture.kafka_sink import KafkaSink
from gateway.capture.outbox import open_store
from gateway.capture.relay import Relay
from gateway.capture.rules import Doubt, Event
from gateway.cli import main
from gateway.metrics.registry import Registry


def test_init_status_doubts_and_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    assert main(["outbox", "init", "--dsn", url]) == 0
    assert "outbox schema ready" in capsys.readouterr().out

    async def fill() -> str:
        store = open_store(url)
        await store.append(
            [
                Event("e1", "order", "1", "OrderCreated", {}, 1.0, {}),
                Event("e2", "order", "1", "OrderUpdated", {}, 2.0, {}),
            ],
            [Doubt("r9", "orders", "POST", "/api/orders", None, "gateway stopped")],
        )
        rows = await store.pending(10)
        await store.mark_failed(rows[0].seq, "record too large")
        await store.close()
        return rows[0].event.id

    blocked = asyncio.run(fill())
    assert main(["outbox", "status", "--dsn", url]) == 0
    out = capsys.readouterr().out
    assert "pending: 2" in out and "in doubt: 1" in out and "blocked: 1" in out
    assert f"strangler outbox skip {blocked}" in out
    assert main(["outbox", "doubts", "--dsn", url]) == 0
    assert (
        "r9\torders\tPOST /api/orders\tstatus=-\tNone\tgateway stopped" in capsys.readouterr().out
    )
    assert main(["outbox", "skip", "--dsn", url, blocked]) == 0
    assert main(["outbox", "skip", "--dsn", url, "nope"]) == 1


def test_outbox_url_comes_from_routes_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(
        "version: 1\nbackends: {legacy: {url: 'http://127.0.0.1:1'}}\n"
        "routes: [{name: all, split: {legacy: 1}}]\n"
        f"outbox: {{url: 'sqlite:///{tmp_path}/from-config.db'}}\n"
    )
    assert main(["outbox", "init", "-c", str(config)]) == 0
    assert (tmp_path / "from-config.db").exists()


def test_unreachable_outbox_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "status", "--dsn", "postgresql://postgres@127.0.0.1:1/x"]) == 1
    assert "outbox: PostgreSQL outbox unreachable" in capsys.readouterr().err


async def test_the_relay_serves_its_metrics_over_http(tmp_path: Path) -> None:
    registry = Registry()
    store = open_store(f"sqlite:///{tmp_path}/o.db")
    relay = Relay(store, KafkaSink("127.0.0.1:1"), registry=registry)
    relay.published.inc((), 5)
    relay.errors.inc(('too "big"\\\n',))
    relay.leader.set((), 1)
    server = await _metrics_server("127.0.0.1:0", registry)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"
    try:
        # a client that goes away without a request does not stop the server
        _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.close()
        await writer.wait_closed()
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/plain; version=0.0.4"
            families = {f.name: f for f in text_string_to_metric_families(response.text)}
            assert families["strangler_relay_published"].type == "counter"
            assert families["strangler_relay_leader"].type == "gauge"
            assert families["strangler_relay_published"].samples[0].value == 5
            [error] = [s for s in families["strangler_relay_publish_errors"].samples if s.value]
            assert error.labels == {"kind": 'too "big"\\\n'} and error.value == 1
            relay.published.inc()  # each scrape reads the registry as it is now
            again = {
                f.name: f for f in text_string_to_metric_families((await client.get(url)).text)
            }
            assert again["strangler_relay_published"].samples[0].value == 6
    finally:
        server.close()
        await server.wait_closed()
        await store.close()
