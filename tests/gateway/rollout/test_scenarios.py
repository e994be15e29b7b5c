"""The rollout driver's failure scenarios end to end: ``strangler run`` as a real process in
front of real backends, real shadow traffic, intervals of seconds set in routes.yaml.

* a new version about 2x slower is rolled back by the latency gate within
  ``failures_before_rollback`` intervals;
* a new version with no errors and normal latency that answers 2% of requests with a
  wrong field is rolled back by the shadow gate, naming the endpoint and the field;
* low traffic (fewer than ``min_requests``) neither promotes nor rolls back: it waits.

The p99s come from the gateway's histogram buckets (5, 10, 50, 100 ms, ...) interpolated
within a bucket, so the slow scenario puts the two versions in different buckets: legacy
answers in 25 ms (the 10-50 ms bucket), the new version in 50 ms (the 50-100 ms bucket),
measured as p99s of about 50 ms and 100 ms.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from gateway.runtime.supervisor import WATCH_INTERVAL
from tests.eventually import wait_until
from tests.gateway.rollout.scenarios import (
    order_app,
    rolled_back,
    rollout_of,
    stores,
    trickle,
    two_versions,
)
from tests.gateway.rollout.test_driver import failing_app, traffic
from tests.gateway.support import config_text, strangler_run
from tests.harness import UvicornThread

SLOW = """\
  - name: api
    split: {v2: 0, legacy: 100}
    rollout:
      backend: v2
      steps: [10, 25, 50, 100]
      interval: 2s
      min_requests: 5
      failures_before_rollback: 2
      gates: {latency_p99: {max_ratio: 1.5}}
"""


def test_a_version_ten_times_as_slow_at_p99_is_rolled_back_by_the_latency_gate(
    tmp_path: Path,
) -> None:
    # 20 ms against 200 ms: p99s in different latency buckets (0.01-0.05 s, 0.1-0.5 s)
    # however loaded the machine is; 25 against 50 ms met in one bucket on a busy one
    with two_versions(order_app(delay_ms=20), order_app(delay_ms=200)) as urls:
        with strangler_run(tmp_path, config_text(urls, SLOW, stores(tmp_path))) as gw:
            started = httpx.post(f"{gw.admin_url}/admin/rollout/api/start").json()
            assert (started["phase"], started["weight"]) == ("progressing", 10)
            with traffic(gw.url):
                rolled = rolled_back(gw.admin_url)
    assert rolled["weight"] == 0
    judged = [v["outcome"] for v in rolled["history"] if v["outcome"] != "wait"]
    assert judged == ["fail", "fail"]  # a window short of evidence is no verdict
    assert {v["weight"] for v in rolled["history"]} == {10}
    # within failures_before_rollback intervals (each judged on the driver's next tick)
    took = rolled["history"][-1]["at"] - started["window_start"]
    assert took <= len(rolled["history"]) * (2 + WATCH_INTERVAL) + 1, took
    last = rolled["history"][-1]
    assert (last["gate"], last["threshold"]) == ("latency_p99", 1.5)
    assert last["measured"] > 1.5
    found = re.fullmatch(
        r"latency_p99: v2 p99 ([\d.]+)ms is ([\d.]+)x legacy's ([\d.]+)ms, above max_ratio 1.50",
        rolled["reason"],
    )
    assert found, rolled["reason"]
    new_p99, ratio, old_p99 = (float(g) for g in found.groups())
    assert 100 < new_p99 <= 500 and ratio > 1.5 and old_p99 < new_p99 / 1.5
    evidence = last["evidence"]
    assert evidence["requests"]["v2"] >= 5 and not evidence["errors"]


SHADOW = """\
  - name: api
    split: {v2: 0, legacy: 100}
    shadow: {backend: v2, percent: 100}
    rollout:
      backend: v2
      steps: [5, 25, 50, 100]
      interval: 2s
      min_requests: 5
      failures_before_rollback: 2
      gates:
        shadow_match: {min: 99.5%, min_compared: 100}
        # v2's p99 here is the slowest of a few dozen requests: keep host jitter out of it
        latency_p99: {max_ratio: 25}
"""


def test_a_version_answering_2_percent_differently_is_rolled_back_by_the_shadow_gate(
    tmp_path: Path,
) -> None:
    with two_versions(order_app(), order_app(wrong_every=50)) as urls:
        with strangler_run(tmp_path, config_text(urls, SHADOW, stores(tmp_path))) as gw:
            started = httpx.post(f"{gw.admin_url}/admin/rollout/api/start").json()
            assert (started["phase"], started["weight"]) == ("progressing", 5)
            with traffic(gw.url) as served:
                rolled = rolled_back(gw.admin_url)
            assert served.keys() <= {"legacy", "v2"}
    assert rolled["weight"] == 0
    judged = [v["outcome"] for v in rolled["history"] if v["outcome"] != "wait"]
    assert judged == ["fail", "fail"]  # a window short of evidence is no verdict
    last = rolled["history"][-1]
    assert (last["gate"], last["threshold"]) == ("shadow_match", 0.995)
    evidence = last["evidence"]
    assert not evidence["errors"] and evidence["compared"] >= 100
    assert (evidence["endpoint"], evidence["top_field"]) == ("GET /api/x", "/total")
    assert 0.95 < last["measured"] < 0.995
    found = re.fullmatch(
        r"shadow_match: ([\d.]+)% of (\d+) answers matched on GET /api/x, "
        r"below min 99\.50%, most often in field /total",
        rolled["reason"],
    )
    assert found, rolled["reason"]
    assert int(found.group(2)) == evidence["compared"]


LOW = """\
  - name: api
    match: {prefix: /api}
    split: {v2: 0, legacy: 100}
    rollout:
      backend: v2
      steps: [50, 100]
      interval: 1s
      min_requests: 30
      failures_before_rollback: 1
  - name: bad
    match: {prefix: /bad}
    split: {v3: 0, legacy: 100}
    rollout:
      backend: v3
      steps: [50, 100]
      interval: 1s
      min_requests: 30
      failures_before_rollback: 1
"""


def test_low_traffic_neither_promotes_nor_rolls_back_it_waits(tmp_path: Path) -> None:
    with (
        UvicornThread(order_app()) as legacy,
        UvicornThread(order_app()) as good,
        UvicornThread(failing_app(every=1)) as bad,
    ):
        urls = {"legacy": legacy.url, "v2": good.url, "v3": bad.url}
        with strangler_run(tmp_path, config_text(urls, LOW, stores(tmp_path))) as gw:
            starts = {
                r: httpx.post(f"{gw.admin_url}/admin/rollout/{r}/start").json()
                for r in ("api", "bad")
            }

            def waited_three_intervals(route: str) -> dict[str, Any] | None:
                shown = rollout_of(gw.admin_url, route)
                last = shown["history"][-1] if shown["history"] else None
                long_enough = last and last["at"] - starts[route]["window_start"] >= 3
                served = last and last["evidence"]["requests"].get(shown["backend"], 0) > 0
                return (
                    shown if shown["phase"] != "progressing" or (long_enough and served) else None
                )

            def judged(route: str) -> dict[str, Any]:
                return wait_until(
                    lambda: waited_three_intervals(route),
                    timeout=20,
                    interval=0.2,
                    message=f"three intervals of low traffic judged on {route}",
                )

            with trickle(gw.url, ["/api/x", "/bad/x"], per_second=4):
                api, bad_route = judged("api"), judged("bad")
    for shown, new in ((api, "v2"), (bad_route, "v3")):
        assert (shown["phase"], shown["step"], shown["weight"]) == ("progressing", 0, 50)
        assert [v["outcome"] for v in shown["history"]] == ["wait"]
        wait = shown["history"][0]
        assert (wait["gate"], wait["threshold"]) == ("error_rate", 30)
        got = wait["evidence"]["requests"][new]
        assert 0 < got < 30
        assert wait["reason"] == f"{got} requests to {new}, fewer than min_requests 30"
    assert bad_route["history"][0]["evidence"]["errors"]["v3"] > 0  # failing, yet not judged
