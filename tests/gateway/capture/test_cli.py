"""``strangler outbox`` commands against an SQLite outbox, and the relay's /metrics endpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.capture.cli import _metrics_server
from gateway.capture.kafka_sink import KafkaSink
from gateway.capture.outbox import Heartbeat, open_store
from gateway.capture.relay import Relay
from gateway.capture.rules import Doubt, Event
from gateway.cli import main
from gateway.metrics.registry import Registry
from tests.eventually import wait_until


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


def test_status_shows_the_relay_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    assert main(["outbox", "init", "--dsn", url]) == 0
    assert main(["outbox", "status", "--dsn", url]) == 0
    assert "relay: none (no relay leads)" in capsys.readouterr().out
    assert main(["outbox", "status", "--dsn", url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["relay"] is None

    async def beat(heartbeat: Heartbeat) -> None:
        store = open_store(url)
        await store.heartbeat(heartbeat)
        await store.close()

    asyncio.run(beat(Heartbeat("relay-1", 5.0, 20.0, 40, 0.5, "round failed: broker down", 2)))
    assert main(["outbox", "status", "--dsn", url]) == 0
    out = capsys.readouterr().out
    assert "relay: relay-1, last heartbeat 0." in out and "(lease 5s), leading for 2" in out
    assert "relay published: 40, 2.0/s on average, last publish 0." in out
    assert "relay last error (2." in out and "ago): round failed: broker down" in out
    assert "STALE" not in out
    assert main(["outbox", "status", "--dsn", url, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["pending"], shown["blocked"], shown["blocked_events"]) == (0, 0, [])
    relay = shown["relay"]
    assert (relay["holder"], relay["published"], relay["rate"], relay["stale"]) == (
        "relay-1",
        40,
        2.0,
        False,
    )
    assert relay["last_error"] == "round failed: broker down" and relay["last_error_age"] >= 2

    # a relay with a 10 ms lease that stopped beating is stale within moments
    asyncio.run(beat(Heartbeat("relay-2", 0.01, 1.0, 0)))

    def stale() -> str | None:
        assert main(["outbox", "status", "--dsn", url]) == 0
        out = capsys.readouterr().out
        return out if "relay: relay-2 STALE" in out else None

    out = wait_until(stale, timeout=5, interval=0.05, message="relay-2 shown as stale")
    assert "no heartbeat for more than 3 leases: the relay died" in out
    assert main(["outbox", "status", "--dsn", url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["relay"]["stale"] is True


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
