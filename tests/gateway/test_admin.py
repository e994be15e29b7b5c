"""The admin API in-process (httpx's ASGITransport), with stub hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.admin import AdminHooks, build_admin
from gateway.config import load_file
from gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[2]


def hooks(token: str | None = None, ok: bool = True) -> AdminHooks:
    metrics = GatewayMetrics()
    metrics.requests.inc(("orders-reads", "legacy", "2xx"), 8)
    metrics.requests.inc(("orders-reads", "orders-v2", "2xx"), 2)
    config = load_file(ROOT / "routes.yaml")

    def reload() -> tuple[bool, list[str]]:
        return (True, []) if ok else (False, ["routes.yaml:1:1: broken"])

    def snapshot() -> dict[str, Any]:
        return metrics.registry.snapshot()

    return AdminHooks(
        config=lambda: config, snapshot=snapshot, reload=reload, ready=lambda: True, token=token
    )


def client(h: AdminHooks, client_ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_admin(h), client=(client_ip, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://admin")


async def test_routes_show_weights_and_live_counts() -> None:
    async with client(hooks()) as c:
        routes = (await c.get("/admin/routes")).json()["routes"]
    reads = routes[0]
    assert reads["name"] == "orders-reads"
    assert reads["backends"] == [
        {"backend": "orders-v2", "weight": 20, "share": 0.2, "requests": 2},
        {"backend": "legacy", "weight": 80, "share": 0.8, "requests": 8},
    ]


async def test_health_metrics_config_and_reload() -> None:
    async with client(hooks()) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).text == "ready\n"
        metrics = await c.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "strangler_requests_total" in metrics.text
        assert (await c.get("/admin/config")).json()["version"] == 1
        assert (await c.post("/admin/reload")).json() == {"reloaded": True}
        assert (await c.get("/admin/reload")).status_code == 405
    async with client(hooks(ok=False)) as c:
        refused = await c.post("/admin/reload")
    assert refused.status_code == 422 and refused.json()["problems"] == ["routes.yaml:1:1: broken"]


async def test_without_token_only_loopback_is_served() -> None:
    async with client(hooks(), client_ip="10.1.2.3") as c:
        assert (await c.get("/metrics")).status_code == 403
    async with client(hooks(), client_ip="::1") as c:
        assert (await c.get("/metrics")).status_code == 200


async def test_with_token_every_call_needs_it() -> None:
    async with client(hooks(token="t0k"), client_ip="127.0.0.1") as c:
        assert (await c.get("/healthz")).status_code == 401
        assert (
            await c.get("/healthz", headers={"authorization": "Bearer wrong"})
        ).status_code == 401
        assert (await c.get("/healthz", headers={"authorization": "Bearer t0k"})).status_code == 200
