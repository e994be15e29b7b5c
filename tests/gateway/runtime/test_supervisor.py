"""``strangler run`` as a real process: workers, reloads under load, admin API, metrics
across workers, memory while streaming, and the admin API's and workers' hardening (a
missing token, foreign Host headers, cross-site posts, a broken file on disk when a
worker restarts, SIGHUP while a worker starts)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from textwrap import dedent

import httpx
import pytest
import yaml

from gateway.config import parse
from gateway.runtime import supervisor as supervisor_module
from gateway.runtime.supervisor import (
    RAM_DIR,
    MissingToken,
    Supervisor,
    admin_policy,
    check_origin_token,
    hold,
    state_root,
)
from gateway.tasks import spawn
from shadow.store import Result, StoreError
from shadow.store.sqlite import SqliteResults
from tests.eventually import GiveUp, eventually, wait_until
from tests.gateway.support import (
    RunningGateway,
    backends,
    byte_stream,
    fire,
    raw_request,
    rss_kib,
    strangler_run,
)
from tests.harness import free_port


async def test_the_supervisor_checkpoints_the_shadow_results_the_workers_write(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/shadow.db"
    worker, reader = SqliteResults(url), SqliteResults(url)  # as in two processes
    await worker.init()
    rows = [Result(i, "api", "GET", "/x", "compared", request_id="x" * 1000) for i in range(2000)]
    await worker.add(rows)
    database = tmp_path / "shadow.db"
    assert database.stat().st_size < 100_000  # the 2 MB are in the WAL
    holding = spawn(hold(reader, None, every=0.01), name="hold")
    try:
        await eventually(lambda: database.stat().st_size > 2_000_000)
        await worker.add(rows[:1])
        assert len(await reader.results()) == 2001
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await worker.close()


async def test_a_checkpoint_that_fails_is_logged_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing:
        url = "sqlite:///failing.db"
        calls = 0
        closed = False

        async def checkpoint(self) -> None:
            self.calls += 1
            if self.calls == 1:
                raise StoreError("disk I/O error")

        async def close(self) -> None:
            self.closed = True

    store = Failing()
    holding = spawn(hold(store, None, every=0.01), name="hold")  # type: ignore[arg-type]
    await eventually(lambda: store.calls >= 2)
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    assert "could not checkpoint the shadow results: disk I/O error" in caplog.text
    assert store.closed


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


def metrics_reaching(
    gw: RunningGateway, minimums: Mapping[str, float], **labels: str
) -> Callable[[], str | None]:
    """A condition: the /metrics text, once every named metric reaches its minimum
    (worker snapshots reach the admin process about once a second)."""

    def check() -> str | None:
        text = gw.metrics()
        reached = all(metric(text, name, **labels) >= least for name, least in minimums.items())
        return text if reached else None

    return check


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
            text = await eventually(
                metrics_reaching(gw, {"strangler_reloads_total": 4}, result="ok"),
                message="4 successful reloads in /metrics",
            )
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
                # The file watcher also sees the change and refuses it: two failed reloads.
                text = await eventually(
                    metrics_reaching(gw, {"strangler_reloads_total": 2}, result="failed"),
                    message="the admin call and the file watcher both refusing the reload",
                )
                still = await client.get(f"{gw.url}/api/users")
    assert refused.status_code == 422
    assert refused.json()["problems"] == [
        f"{gw.config_path}:13:13: routes[1].split.lgacy: unknown backend 'lgacy' "
        "(known: legacy, new)"
    ]
    assert still.status_code == 200 and still.headers["x-strangler-backend"] == "new"
    assert metric(text, "strangler_reloads_total", result="failed") >= 2
    assert metric(text, "strangler_reloads_total", result="ok") == 0


async def test_metrics_are_correct_with_two_workers(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        with strangler_run(tmp_path, routes_yaml(b["legacy"].url, b["new"].url, 50), 2) as gw:
            # New connections each time, so both workers take a share of the requests.
            for _ in range(10):
                await fire(gw.port, [("GET", "/api/users", [])] * 100, concurrency=4)
            counts = {
                "strangler_requests_total": 1000,
                "strangler_request_duration_seconds_count": 1000,
            }
            text = await eventually(
                metrics_reaching(gw, counts, route="users"),
                message="1000 users requests in the merged /metrics",
            )
            routes = httpx.get(f"{gw.admin_url}/admin/routes").json()["routes"]
            config = httpx.get(f"{gw.admin_url}/admin/config").json()
    assert metric(text, "strangler_requests_total", route="users") == 1000
    assert metric(text, "strangler_request_duration_seconds_count", route="users") == 1000
    assert 'le="0.001"' in text and 'le="0.005"' in text and 'le="60"' in text
    assert sum(b["requests"] for b in routes[0]["backends"]) == 1000
    assert config["routes"][0]["name"] == "users"


ADMIN_WITH_TOKENS = (
    "version: 1\nadmin: {listen: 127.0.0.1:ADMIN_PORT, token_env: TOK, metrics_token_env: SCRAPE}\n"
)


async def test_admin_requires_the_token_when_configured(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        doc = routes_yaml(b["legacy"].url, b["new"].url, 0)
        doc = doc.replace("version: 1\n", ADMIN_WITH_TOKENS)
        env = {"TOK": "s3cret", "SCRAPE": "m3trics"}
        with strangler_run(tmp_path, doc, env=env, token="s3cret") as gw:
            admin = {"authorization": "Bearer s3cret"}
            scrape = {"authorization": "Bearer m3trics"}
            denied = httpx.get(f"{gw.admin_url}/metrics")
            allowed = httpx.get(f"{gw.admin_url}/metrics", headers=admin)
            scraped = httpx.get(f"{gw.admin_url}/metrics", headers=scrape)
            config_with_scrape = httpx.get(f"{gw.admin_url}/admin/config", headers=scrape)
            cross_site = httpx.post(f"{gw.admin_url}/admin/reload", data={"a": "1"})
            rebound = httpx.get(
                f"{gw.admin_url}/metrics",
                headers={**admin, "host": f"rebound.example:{gw.admin_port}"},
            )
            non_ascii = await raw_request(
                gw.admin_port,
                b"GET /admin/config HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Authorization: Bearer s3cr\xc3\xa9t\r\nConnection: close\r\n\r\n" % gw.admin_port,
            )
    assert denied.status_code == 401
    assert allowed.status_code == 200 and scraped.status_code == 200
    assert config_with_scrape.status_code == 401
    assert cross_site.status_code == 401
    assert rebound.status_code == 403 and "rebound.example" in rebound.json()["error"]
    assert non_ascii.startswith(b"HTTP/1.1 401 "), non_ascii


@pytest.mark.parametrize(
    ("admin", "env", "variable", "field"),
    [
        ("token_env: TOK", {"TOK": ""}, "TOK", "token_env"),
        ("token_env: TOK_NOT_SET_ANYWHERE", {}, "TOK_NOT_SET_ANYWHERE", "token_env"),
        ("metrics_token_env: SCRAPE", {"SCRAPE": ""}, "SCRAPE", "metrics_token_env"),
    ],
)
def test_an_empty_or_unset_token_variable_refuses_to_start(
    tmp_path: Path, admin: str, env: dict[str, str], variable: str, field: str
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        + routes_yaml("http://127.0.0.1:9", "http://127.0.0.1:10", 0).replace(
            "version: 1\n", f"version: 1\nadmin: {{listen: 127.0.0.1:{free_port()}, {admin}}}\n"
        )
    )
    environ = {k: v for k, v in os.environ.items() if k != variable}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(path)],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert (
        f"admin.{field} names {variable}, but that variable is empty or unset; "
        f"set it or remove {field}"
    ) in result.stderr


def test_admin_policy_reads_both_tokens() -> None:
    config = parse(
        routes_yaml("http://127.0.0.1:9", "http://127.0.0.1:10", 0).replace(
            "version: 1\n",
            "version: 1\nadmin: {token_env: TOK, metrics_token_env: SCRAPE, "
            "allowed_hosts: [gw.internal]}\n",
        )
    )
    policy = admin_policy(config, {"TOK": "a", "SCRAPE": "m"})
    assert (policy.token, policy.metrics_token) == ("a", "m")
    assert policy.listen == ("127.0.0.1", 9901) and policy.allowed_hosts == ("gw.internal",)
    with pytest.raises(MissingToken, match="admin.metrics_token_env names SCRAPE"):
        admin_policy(config, {"TOK": "a", "SCRAPE": ""})


def test_an_origin_token_variable_must_be_set_when_named(tmp_path: Path) -> None:
    plain = routes_yaml("http://127.0.0.1:9", "http://127.0.0.1:10", 0)
    check_origin_token(parse(plain), {})  # none named: nothing to check
    config = parse(plain.replace("version: 1\n", "version: 1\nproxy: {origin_token_env: OT}\n"))
    check_origin_token(config, {"OT": "x"})
    for environ in ({}, {"OT": ""}):
        with pytest.raises(MissingToken, match="proxy.origin_token_env names OT"):
            check_origin_token(config, environ)
    path = tmp_path / "routes.yaml"
    text = plain.replace("version: 1\n", "version: 1\nproxy: {origin_token_env: OT_UNSET_X}\n")
    path.write_text(f"listen: 127.0.0.1:{free_port()}\n" + text)
    environ = {k: v for k, v in os.environ.items() if k != "OT_UNSET_X"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(path)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2 and "proxy.origin_token_env names OT_UNSET_X" in result.stderr


async def test_without_token_rebound_hosts_and_cross_site_posts_are_refused(
    tmp_path: Path,
) -> None:
    with backends("legacy", "new") as b:
        with strangler_run(tmp_path, routes_yaml(b["legacy"].url, b["new"].url, 0)) as gw:
            reload = f"{gw.admin_url}/admin/reload"
            form = httpx.post(reload, data={"a": "1"})
            text = httpx.post(reload, content=b"{}", headers={"content-type": "text/plain"})
            foreign = httpx.post(reload, headers={"origin": "http://evil.example"})
            rebound = httpx.get(
                f"{gw.admin_url}/admin/config",
                headers={"host": f"rebound.example:{gw.admin_port}"},
            )
            metrics_text = gw.metrics()
            own = httpx.post(reload, json={}, headers={"origin": gw.admin_url})
    assert [r.status_code for r in (form, text, foreign, rebound)] == [403] * 4
    assert metric(metrics_text, "strangler_reloads_total") == 0  # none reached the supervisor
    assert own.json() == {"reloaded": True}


def worker_pids(supervisor_pid: int) -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{supervisor_pid}/task").iterdir():
        pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


async def test_a_worker_restarted_while_the_file_is_broken_serves_the_last_good_config(
    tmp_path: Path,
) -> None:
    with backends("legacy", "new") as b:
        good = routes_yaml(b["legacy"].url, b["new"].url, 100)
        with strangler_run(tmp_path, good) as gw:
            head = gw.config_path.read_text().split("version: 1")[0]
            gw.config_path.write_text(head + good.replace("split: {new: 100", "split: {nw: 100"))
            (first,) = worker_pids(gw.proc.pid)
            os.kill(first, signal.SIGKILL)

            async def replaced_and_ready() -> bool:
                if gw.proc.poll() is not None:
                    raise GiveUp(f"strangler run exited with {gw.proc.returncode}")
                workers = worker_pids(gw.proc.pid)
                if not workers or first in workers:
                    return False
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{gw.admin_url}/readyz")).status_code == 200

            await eventually(replaced_and_ready, timeout=15, interval=0.1)
            served = httpx.get(f"{gw.url}/api/users")
    assert served.status_code == 200 and served.headers["x-strangler-backend"] == "new"


def test_sighup_while_a_worker_starts_does_not_kill_it(tmp_path: Path) -> None:
    with backends("legacy", "new") as b:
        port = free_port()
        path = tmp_path / "routes.yaml"
        doc = routes_yaml(b["legacy"].url, b["new"].url, 0)
        path.write_text(f"listen: 127.0.0.1:{port}\n{doc}")
        supervisor = Supervisor(str(path), 1)
        try:
            child = supervisor._start_worker()
            supervisor.children = [child]
            sent = 0

            def hangup_then_check_ready() -> bool:
                nonlocal sent
                if child.poll() is not None:
                    raise GiveUp(f"the worker exited with {child.returncode} after {sent} SIGHUPs")
                child.send_signal(signal.SIGHUP)
                sent += 1
                return supervisor.ready()

            wait_until(hangup_then_check_ready, timeout=20, interval=0.005)
            for _ in range(20):  # and once its loop handles them
                child.send_signal(signal.SIGHUP)
            served = httpx.get(f"http://127.0.0.1:{port}/api/users")
            alive = child.poll() is None
        finally:
            supervisor.stop()
    assert sent > 10
    assert alive and served.status_code == 200 and served.headers["x-strangler-backend"] == "legacy"


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


def test_the_shipped_deployment_requires_the_admin_token_secret() -> None:
    root = Path(__file__).resolve().parents[3]
    deployment = yaml.safe_load((root / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (token,) = [e for e in container["env"] if e["name"] == "STRANGLER_ADMIN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"].get("optional", False) is False
    cluster = parse((root / "k8s" / "routes.yaml").read_text())
    assert cluster.admin_token_env == "STRANGLER_ADMIN_TOKEN"


def filesystem_of(path: Path) -> str:
    """The type of the filesystem ``path`` is on (the longest mount point above it)."""
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    resolved = str(path.resolve())
    above = [
        (point, kind) for point, kind in mounts if resolved.startswith(point.rstrip("/") + "/")
    ]
    return max(above, key=lambda mount: len(mount[0]))[1]


def test_workers_publish_their_metrics_in_ram(tmp_path: Path) -> None:
    # Replacing a snapshot on a disk frees the old file's blocks; with ext4's discard the
    # worker's loop waits for the device every second.  In RAM it never does.
    assert RAM_DIR.is_dir(), "this test runs on Linux, which has /dev/shm"
    with backends("legacy", "new") as b:
        path = tmp_path / "routes.yaml"
        doc = routes_yaml(b["legacy"].url, b["new"].url, 0)
        path.write_text(f"listen: 127.0.0.1:{free_port()}\n{doc}")
        supervisor = Supervisor(str(path), 1)
        try:
            supervisor.start()
            wait_until(supervisor.ready, timeout=20)
            snapshots = list(supervisor.metrics_dir.glob("metrics-*.json"))
            assert len(snapshots) == 1
            assert filesystem_of(snapshots[0]) == "tmpfs"
            assert snapshots[0].is_relative_to(RAM_DIR)
        finally:
            supervisor.stop()
        assert not supervisor.state_dir.exists()


def test_without_a_ram_directory_the_state_goes_to_the_temporary_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(supervisor_module, "RAM_DIR", tmp_path / "missing")
    assert state_root() is None
    (tmp_path / "missing").touch()  # not a directory either
    assert state_root() is None
