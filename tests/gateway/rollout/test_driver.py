"""The driver end to end: ``strangler run`` as a real process in front of two real backends,
traffic over real sockets, intervals of one second set in routes.yaml.

A good new version steps 0 -> 5 -> 25 -> 50, waits for approval, and is promoted to 100
with the evidence of every step recorded; one answering 5xx to a share of requests is
rolled back to weight 0 with the failed gate as the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.cli import main
from tests.eventually import wait_until
from tests.gateway.support import backend_app, backends, config_text, strangler_run
from tests.harness import UvicornThread

ROUTES = """\
  - name: api
    split: {v2: 0, legacy: 100}
    rollout:
      backend: v2
      steps: [5, 25, 50, {weight: 100, approve: true}]
      interval: 1s
      min_requests: 5
      failures_before_rollback: 2
      gates: {latency_p99: {max_ratio: 10}}  # a few requests' p99 on a busy test machine is noise
"""


def failing_app(every: int) -> Any:
    """A new version that answers 500 to one request in ``every``."""
    inner = backend_app("v2")
    seen = [0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen[0] += 1
            if seen[0] % every == 0:
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b"boom"})
                return
        await inner(scope, receive, send)

    return app


@contextmanager
def traffic(url: str) -> Iterator[dict[str, int]]:
    """Requests sent in a loop while the block runs; the backends that answered, counted."""
    served: dict[str, int] = {}
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.is_set():
                reply = client.get("/api/x")
                name = reply.headers.get("x-strangler-backend", "?")
                served[name] = served.get(name, 0) + 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        yield served
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def status(admin: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{admin}/admin/rollout/api").json()
    return answer


def test_a_good_version_steps_up_waits_for_approval_and_is_promoted(
    tmp_path: Path, capsys: Any
) -> None:
    with backends("legacy", "v2") as servers:
        urls = {n: s.url for n, s in servers.items()}
        store = f"rollout_store: {{url: 'sqlite:///{tmp_path}/rollout.db'}}\n"
        with strangler_run(tmp_path, config_text(urls, ROUTES, store), workers=2) as gw:
            assert status(gw.admin_url)["phase"] == "pending"
            started = httpx.post(f"{gw.admin_url}/admin/rollout/api/start").json()
            assert (started["phase"], started["weight"]) == ("progressing", 5)
            with traffic(gw.url):
                waiting = wait_until(
                    lambda: (s := status(gw.admin_url))["phase"] == "waiting_for_approval" and s,
                    timeout=30,
                    interval=0.2,
                    message="the rollout to wait for approval",
                )
                assert waiting["weight"] == 50
                judged = [(v["weight"], v["outcome"]) for v in waiting["history"]]
                assert [w for w, o in judged if o == "pass"] == [5, 25, 50]
                for verdict in waiting["history"]:
                    if verdict["outcome"] == "pass":
                        assert verdict["evidence"]["requests"]["v2"] >= 5
                code = main(["rollout", "approve", "api", "-c", str(gw.config_path)])
                assert code == 0
                assert "api: promoted  v2 at 100%" in capsys.readouterr().out

            # every worker applies the promoted weight within about a second
            def all_new() -> bool:
                with httpx.Client(base_url=gw.url) as client:
                    names = {client.get("/api/x").headers["x-strangler-backend"] for _ in range(40)}
                return names == {"v2"}

            wait_until(all_new, timeout=10, interval=0.2, message="only v2 to serve")
            metrics = httpx.get(f"{gw.admin_url}/metrics").text
            assert 'strangler_rollout_weight{route="api",backend="v2"} 100' in metrics


def test_a_version_answering_5xx_is_rolled_back(tmp_path: Path, capsys: Any) -> None:
    with backends("legacy") as servers, UvicornThread(failing_app(every=4)) as bad:
        urls = {"legacy": servers["legacy"].url, "v2": bad.url}
        store = f"rollout_store: {{url: 'sqlite:///{tmp_path}/rollout.db'}}\n"
        with strangler_run(tmp_path, config_text(urls, ROUTES, store)) as gw:
            assert main(["rollout", "start", "api", "-c", str(gw.config_path)]) == 0
            with traffic(gw.url):
                rolled = wait_until(
                    lambda: (s := status(gw.admin_url))["phase"] == "rolled_back" and s,
                    timeout=30,
                    interval=0.2,
                    message="the rollout to be rolled back",
                )
            assert rolled["weight"] == 0
            assert rolled["reason"].startswith("error_rate: v2 answered 2")
            failed = [v for v in rolled["history"] if v["outcome"] == "fail"]
            assert len(failed) == 2 and failed[-1]["threshold"] == 0.01
            capsys.readouterr()
            assert main(["rollout", "status", "--format", "json", "-c", str(gw.config_path)]) == 0
            assert '"phase": "rolled_back"' in capsys.readouterr().out


THREE_PERCENT = """\
  - name: api
    split: {v2: 0, legacy: 100}
    rollout:
      backend: v2
      steps: [50, 100]
      interval: 2s
      min_requests: 60   # 60 answers hold at least one of the 500s (every 33rd)
      failures_before_rollback: 2
      gates: {latency_p99: {max_ratio: 10}}
"""


def test_a_version_answering_3_percent_5xx_is_rolled_back_within_two_intervals(
    tmp_path: Path,
) -> None:
    with backends("legacy") as servers, UvicornThread(failing_app(every=33)) as bad:
        urls = {"legacy": servers["legacy"].url, "v2": bad.url}
        store = f"rollout_store: {{url: 'sqlite:///{tmp_path}/rollout.db'}}\n"
        with strangler_run(tmp_path, config_text(urls, THREE_PERCENT, store)) as gw:
            assert main(["rollout", "start", "api", "-c", str(gw.config_path)]) == 0
            with traffic(gw.url):
                rolled = wait_until(
                    lambda: (s := status(gw.admin_url))["phase"] == "rolled_back" and s,
                    timeout=40,
                    interval=0.2,
                    message="the rollout to be rolled back",
                )
    assert rolled["weight"] == 0 and rolled["reason"].startswith("error_rate: v2 answered")
    judged = [v["outcome"] for v in rolled["history"] if v["outcome"] != "wait"]
    assert judged == ["fail", "fail"], rolled["history"]  # never passed a step first
