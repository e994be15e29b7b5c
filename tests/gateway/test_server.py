"""``strangler run`` as a real process: workers, reloads under load, admin API, metrics
across workers, and memory while streaming."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path
from textwrap import dedent

import httpx

from tests.gateway.support import backends, byte_stream, fire, rss_kib, strangler_run


def routes_yaml(legacy: str, new: str, weight_new: int) -> str:
    return dedent(f"""\
        version: 1
        backends:
          legacy: {{url: "{legacy}", legacy: true}}
          new: {{url: "{new}"}}
        routes:
          - name: users
            match: {{prefix: /api/users}}
            split: {{new: {weight_new}, legacy: {100 - weight_new}}}
            fallback: legacy
          - name: default
            split: {{legacy: 1}}
        """)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_reload_under_load_has_zero_failures(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        legacy, new = b["legacy"].url, b["new"].url
        with strangler_run(tmp_path, routes_yaml(legacy, new, 0), workers=2) as gw:
            load = asyncio.ensure_future(
                fire(gw.port, [("GET", "/api/users", [])] * 6000, concurrency=16)
            )
            weights = [100, 0, 100, 50]
            for i, weight in enumerate(weights):
                await asyncio.sleep(0.3)
                gw.config_path.write_text(
                    gw.config_path.read_text().split("version: 1")[0]
                    + routes_yaml(legacy, new, weight)
                )
                if i % 2 == 0:
                    gw.proc.send_signal(signal.SIGHUP)
                else:
                    async with httpx.AsyncClient() as client:
                        reply = await client.post(f"{gw.admin_url}/admin/reload")
                    assert reply.status_code == 200
            replies = await load
            after = await fire(gw.port, [("GET", "/api/users", [])] * 400)
            await asyncio.sleep(1.5)
            text = gw.metrics()
    assert Counter(r.status for r in replies) == {200: 6000}
    served = Counter(r.headers[b"x-strangler-backend"] for r in replies)
    assert served[b"legacy"] > 0 and served[b"new"] > 0  # the reloads took effect mid-load
    assert abs(sum(r.headers[b"x-strangler-backend"] == b"new" for r in after) / 400 - 0.5) < 0.15
    assert metric(text, "strangler_reloads_total", result="ok") >= 4


async def test_invalid_reload_is_refused_and_old_config_keeps_serving(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        good = routes_yaml(b["legacy"].url, b["new"].url, 100)
        with strangler_run(tmp_path, good) as gw:
            head = gw.config_path.read_text().split("version: 1")[0]
            gw.config_path.write_text(
                head + good.replace("split: {legacy: 1}", "split: {lgacy: 1}")
            )
            async with httpx.AsyncClient() as client:
                refused = await client.post(f"{gw.admin_url}/admin/reload")
                still = await client.get(f"{gw.url}/api/users")
            await asyncio.sleep(1.2)  # the file watcher also sees the change and refuses it
            text = gw.metrics()
    assert refused.status_code == 422
    assert refused.json()["problems"] == [
        f"{gw.config_path}:13:13: routes[1].split.lgacy: unknown backend 'lgacy' "
        "(known: legacy, new)"
    ]
    assert still.status_code == 200 and still.headers["x-strangler-backend"] == "new"
    assert metric(text, "strangler_reloads_total", result="failed") >= 1


async def test_metrics_are_correct_with_two_workers(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        with strangler_run(tmp_path, routes_yaml(b["legacy"].url, b["new"].url, 50), 2) as gw:
            # New connections each time, so both workers take a share of the requests.
            for _ in range(10):
                await fire(gw.port, [("GET", "/api/users", [])] * 100, concurrency=4)
            await asyncio.sleep(1.5)
            text = gw.metrics()
            routes = httpx.get(f"{gw.admin_url}/admin/routes").json()["routes"]
            config = httpx.get(f"{gw.admin_url}/admin/config").json()
    assert metric(text, "strangler_requests_total", route="users") == 1000
    assert metric(text, "strangler_request_duration_seconds_count", route="users") == 1000
    assert 'le="0.001"' in text and 'le="0.005"' in text and 'le="60"' in text
    assert sum(b["requests"] for b in routes[0]["backends"]) == 1000
    assert config["routes"][0]["name"] == "users"


async def test_admin_requires_the_token_when_configured(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        doc = routes_yaml(b["legacy"].url, b["new"].url, 0).replace(
            "version: 1\n", "version: 1\nadmin: {listen: 127.0.0.1:ADMIN_PORT, token_env: TOK}\n"
        )
        with strangler_run(tmp_path, doc, env={"TOK": "s3cret"}, token="s3cret") as gw:
            denied = httpx.get(f"{gw.admin_url}/metrics")
            allowed = httpx.get(
                f"{gw.admin_url}/metrics", headers={"authorization": "Bearer s3cret"}
            )
    assert denied.status_code == 401
    assert allowed.status_code == 200


async def test_100mb_each_way_keeps_gateway_memory_flat(tmp_path: Path) -> None:
    size = 100 * 1024 * 1024
    with backends("legacy", "new") as b:
        with strangler_run(tmp_path, routes_yaml(b["legacy"].url, b["new"].url, 0)) as gw:
            base = rss_kib(gw.proc.pid)
            peak = base
            done = False

            async def sample() -> None:
                nonlocal peak
                while not done:
                    peak = max(peak, rss_kib(gw.proc.pid))
                    await asyncio.sleep(0.02)

            sampler = asyncio.ensure_future(sample())
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
                up = await client.post("/upload", content=byte_stream(size))
                got = 0
                async with client.stream("GET", f"/bytes/{size}") as down:
                    async for chunk in down.aiter_raw():
                        got += len(chunk)
            done = True
            await sampler
    assert up.json()["size"] == size and got == size
    assert time.monotonic() - started < 60
    assert (peak - base) < 50 * 1024, f"RSS grew by {(peak - base) / 1024:.1f} MiB"
