"""The admin API in-process (httpx's ASGITransport), with stub hooks."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from gateway.capture.outbox import Heartbeat
from gateway.capture.outbox import open_store as open_outbox
from gateway.capture.rules import Event
from gateway.config import Config, load_file, parse
from gateway.metrics.registry import GatewayMetrics
from gateway.runtime.access import AccessPolicy
from gateway.runtime.admin import AdminHooks, build_admin
from shadow.store import FieldDiff, Result
from shadow.store import open_store as open_results
from tests.eventually import eventually

ROOT = Path(__file__).resolve().parents[3]
ADMIN = "http://127.0.0.1:9901"  # the admin listen address of the repository's routes.yaml


def hooks(
    token: str | None = None,
    ok: bool = True,
    metrics_token: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    config: Config | None = None,
) -> AdminHooks:
    metrics = GatewayMetrics()
    metrics.requests.inc(("orders-reads", "legacy", "2xx"), 8)
    metrics.requests.inc(("orders-reads", "orders-v2", "2xx"), 2)
    config = config or load_file(ROOT / "routes.yaml")
    policy = AccessPolicy(config.admin_listen, allowed_hosts, token, metrics_token)

    def reload() -> tuple[bool, list[str]]:
        return (True, []) if ok else (False, ["routes.yaml:1:1: broken"])

    def snapshot() -> dict[str, Any]:
        return metrics.registry.snapshot()

    return AdminHooks(
        config=lambda: config, snapshot=snapshot, reload=reload, ready=lambda: True, policy=policy
    )


def client(h: AdminHooks, client_ip: str = "127.0.0.1", base: str = ADMIN) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_admin(h), client=(client_ip, 1234))
    return httpx.AsyncClient(transport=transport, base_url=base)


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


async def test_a_host_that_is_not_the_admin_listener_is_refused() -> None:
    async with client(hooks(), base="http://rebound.example:9901") as c:
        refused = await c.get("/admin/config")
    assert refused.status_code == 403
    assert 'host "rebound.example:9901"' in refused.json()["error"]
    for base in ("http://localhost:9901", "http://[::1]:9901"):
        async with client(hooks(), base=base) as c:
            assert (await c.get("/admin/config")).status_code == 200, base
    async with client(hooks(allowed_hosts=("admin.internal",)), base="http://admin.internal") as c:
        assert (await c.get("/admin/config")).status_code == 200


async def test_without_token_cross_site_state_changes_are_refused() -> None:
    async with client(hooks()) as c:
        form = await c.post("/admin/reload", data={"a": "1"})
        text = await c.post("/admin/reload", content=b"x", headers={"content-type": "text/plain"})
        foreign = await c.post("/admin/reload", headers={"origin": "http://evil.example"})
        own = await c.post("/admin/reload", json={}, headers={"origin": ADMIN})
        bare = await c.post("/admin/reload")
    assert [r.status_code for r in (form, text, foreign)] == [403, 403, 403]
    assert "http://evil.example" in foreign.json()["error"]
    assert own.json() == {"reloaded": True} and bare.json() == {"reloaded": True}


async def test_with_token_a_post_without_authorization_is_refused_from_loopback() -> None:
    async with client(hooks(token="t0k")) as c:
        simple = await c.post("/admin/reload", data={"a": "1"})
        allowed = await c.post("/admin/reload", headers={"authorization": "Bearer t0k"})
    assert simple.status_code == 401 and simple.headers["www-authenticate"] == "Bearer"
    assert allowed.json() == {"reloaded": True}


async def test_a_non_ascii_authorization_header_is_401_not_500() -> None:
    async with client(hooks(token="t0k")) as c:
        for value in ("Bearer caf\u00e9".encode(), b"Bearer \xff\xfe"):
            reply = await c.get("/admin/config", headers={b"authorization": value})
            assert reply.status_code == 401, value


SECRET_STORES = """
shadow_store: {url: "postgresql://shadow:s3cret@db/shadow"}
"""


async def test_config_endpoint_masks_credentials() -> None:
    text = (ROOT / "routes.yaml").read_text()
    text = text.replace(
        'outbox: {url: "sqlite:///./strangler-outbox.db"}',
        'outbox: {url: "postgresql://gw:hunter2@db:5432/outbox"}',
    )
    config = parse(text + SECRET_STORES)
    assert config.outbox["url"] == "postgresql://gw:hunter2@db:5432/outbox"
    async with client(hooks(config=config)) as c:
        reply = await c.get("/admin/config")
    shown = reply.json()
    assert "hunter2" not in reply.text and "s3cret" not in reply.text
    assert shown["outbox"]["url"] == "postgresql://gw:***@db:5432/outbox"
    assert shown["shadow_store"]["url"] == "postgresql://shadow:***@db/shadow"
    assert shown["admin"]["token_env"] == "STRANGLER_ADMIN_TOKEN"


async def test_metrics_token_opens_metrics_and_nothing_else() -> None:
    scrape = {"authorization": "Bearer scrape"}
    async with client(hooks(token="adm", metrics_token="scrape")) as c:
        assert (await c.get("/metrics", headers=scrape)).status_code == 200
        assert (await c.get("/metrics", headers={"authorization": "Bearer adm"})).status_code == 200
        assert (await c.get("/admin/config", headers=scrape)).status_code == 401
        assert (await c.get("/readyz", headers=scrape)).status_code == 401
    async with client(hooks(token="adm")) as c:
        assert (await c.get("/metrics", headers=scrape)).status_code == 401


async def test_stats_leave_out_the_shadow_and_outbox_panels_when_not_configured() -> None:
    async with client(hooks()) as c:
        body = (await c.get("/admin/stats")).json()
    assert body["shadow"] is None and body["outbox"] is None


async def test_stats_show_recent_shadow_results_per_endpoint_and_the_outbox(
    tmp_path: Path,
) -> None:
    shadow = open_results(f"sqlite:///{tmp_path}/shadow.db")
    outbox = open_outbox(f"sqlite:///{tmp_path}/outbox.db")
    try:
        await shadow.init()
        now = time.time()
        diff = (FieldDiff("/status", "changed", "a", "b"),)
        await shadow.add(
            [
                Result(now - 3600, "api", "GET", "/old", "compared", request_id="stale"),
                Result(now, "api", "GET", "/orders/{id}", "compared", request_id="ok"),
                Result(now, "api", "GET", "/orders/{id}", "compared", request_id="bad", diffs=diff),
            ]
        )
        await outbox.init()
        await outbox.append([Event(str(uuid.UUID(int=1)), "order", "o1", "Put", {}, now - 7)])
        h = hooks()
        h.shadow, h.outbox = shadow, outbox
        async with client(h) as c:
            body = (await c.get("/admin/stats")).json()
    finally:
        await shadow.close()
        await outbox.close()
    [row] = body["shadow"]["endpoints"]  # the hour-old result is outside the window
    assert (row["endpoint"], row["compared"], row["match_pct"]) == ("/orders/{id}", 2, 50.0)
    assert row["fields"] == [
        {"path": "/status", "kind": "changed", "count": 1, "examples": ["bad"]}
    ]
    assert body["outbox"]["pending"] == 1 and body["outbox"]["published"] == 0
    assert 6 < body["outbox"]["oldest_pending_age"] < 60
    assert (body["outbox"]["doubts"], body["outbox"]["blocked"]) == (0, 0)
    assert body["outbox"]["relay"] is None  # no relay leads


async def test_stats_show_the_relays_state_from_its_heartbeat(tmp_path: Path) -> None:
    outbox = open_outbox(f"sqlite:///{tmp_path}/outbox.db")
    try:
        await outbox.init()
        await outbox.heartbeat(Heartbeat("relay-7", 5.0, 30.0, 90, 0.25, "", None))
        h = hooks()
        h.outbox = outbox
        async with client(h) as c:
            relay = (await c.get("/admin/stats")).json()["outbox"]["relay"]
            await outbox.heartbeat(Heartbeat("relay-8", 0.01, 1.0, 0))

            async def stale() -> dict[str, Any] | None:
                shown: dict[str, Any] = (await c.get("/admin/stats")).json()["outbox"]["relay"]
                return shown if shown["stale"] else None

            gone = await eventually(stale, timeout=5, message="relay-8's heartbeat stale")
    finally:
        await outbox.close()
    assert (relay["holder"], relay["stale"], relay["published"], relay["rate"]) == (
        "relay-7",
        False,
        90,
        3.0,
    )
    assert 0 <= relay["heartbeat_age"] < 5 and relay["last_publish_age"] >= 0.25
    assert relay["last_error"] == "" and relay["last_error_age"] is None
    assert gone["holder"] == "relay-8" and gone["heartbeat_age"] > 0.03


async def test_an_unreadable_shadow_store_is_reported_in_its_panel(tmp_path: Path) -> None:
    shadow = open_results(f"sqlite:///{tmp_path}/empty.db")  # no schema: the query fails
    try:
        h = hooks()
        h.shadow = shadow
        async with client(h) as c:
            answer = await c.get("/admin/stats")
    finally:
        await shadow.close()
    assert answer.status_code == 200
    assert answer.json()["shadow"]["error"].startswith("shadow results:")
