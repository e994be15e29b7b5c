"""Two gateway replicas on one PostgreSQL rollout store: ``strangler run`` twice as real
processes in front of two real backends, intervals of one second set in routes.yaml.

Both replicas apply the weights a rollout started on one of them sets; exactly one of them
holds the store's lease and judges the windows; a replica stopped while the rollout waits
for approval and started again shows the same step, and approving on it moves on.
Every replica's traffic counts: a new version answering 5xx only to traffic sent through
the replica that does NOT drive is rolled back on that replica's counters.
(The helpers are in :mod:`tests.gateway.rollout.replicas`.)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx

from tests.eventually import wait_until
from tests.gateway.rollout.replicas import (
    driving,
    one_driver,
    only_v2,
    status,
    traffic,
    waiting_at,
    weight_is,
)
from tests.gateway.rollout.test_driver import failing_app
from tests.gateway.support import backends, config_text, strangler_run
from tests.harness import UvicornThread

ROUTES = """\
  - name: api
    split: {v2: 0, legacy: 100}
    rollout:
      backend: v2
      steps: [5, {weight: 25, approve: true}, 100]
      interval: 1s
      min_requests: 5
      failures_before_rollback: 2
      gates: {latency_p99: {max_ratio: 10}}  # a few requests' p99 on a busy test machine is noise
"""


def test_two_replicas_follow_one_driver_and_a_restart_resumes_the_step(
    tmp_path: Path, pg_database: str
) -> None:
    store = f"rollout_store: {{url: '{pg_database}'}}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with backends("legacy", "v2") as servers:
        text = config_text({n: s.url for n, s in servers.items()}, ROUTES, store)
        with strangler_run(tmp_path / "b", text) as b:
            with strangler_run(tmp_path / "a", text) as a:
                # exactly one replica holds the lease
                leads = wait_until(
                    lambda: one_driver(a, b),
                    timeout=5,
                    interval=0.2,
                    message="exactly one replica to drive",
                )
                driver = next(holder for holder, x in leads if x)
                assert leads[0][0] != leads[1][0]

                started = httpx.post(f"{a.admin_url}/admin/rollout/api/start").json()
                assert (started["phase"], started["weight"]) == ("progressing", 5)
                for gw in (a, b):  # both show the stored weight within about a second
                    wait_until(partial(weight_is, gw, 5), timeout=3, interval=0.1)
                with traffic(a, b) as served:
                    # both replicas' workers route to the new backend now
                    wait_until(lambda: all(s.get("v2", 0) > 0 for s in served), timeout=5)
                    waiting = waiting_at(a, 5)
                assert all(s.get("?", 0) == 0 for s in served)
                assert waiting["weight"] == 5 and waiting["driver"] == driver
                judged = [v["outcome"] for v in waiting["history"] if v["outcome"] != "wait"]
                assert judged == ["pass"]  # a window without enough traffic only waits
                assert status(b)["driver"] == driver and status(b)["version"] == waiting["version"]

            # A is stopped (SIGTERM) while the rollout waits: B drives, nothing moved
            wait_until(lambda: driving(b)[1], timeout=8, interval=0.2, message="B to drive")
            assert (status(b)["phase"], status(b)["weight"]) == ("waiting_for_approval", 5)

            with strangler_run(tmp_path / "a", text) as again:
                resumed = status(again)
                assert (resumed["phase"], resumed["weight"]) == ("waiting_for_approval", 5)
                assert resumed["history"] == waiting["history"]
                approved = httpx.post(f"{again.admin_url}/admin/rollout/api/approve").json()
                assert (approved["phase"], approved["weight"]) == ("progressing", 25)
                with traffic(again, b):
                    wait_until(
                        lambda: status(b)["phase"] == "promoted",
                        timeout=20,
                        interval=0.2,
                        message="the rollout to be promoted",
                    )
                for gw in (again, b):
                    wait_until(partial(only_v2, gw), timeout=5, interval=0.2)
                    wait_until(partial(weight_is, gw, 100), timeout=3, interval=0.1)


FAILING = """\
  - name: api
    split: {v2: 0, legacy: 100}
    rollout:
      backend: v2
      steps: [50, 100]
      interval: 1s
      min_requests: 20
      failures_before_rollback: 2
      gates: {latency_p99: {max_ratio: 10}}
"""


def test_traffic_through_the_replica_that_does_not_drive_decides_the_step(
    tmp_path: Path, pg_database: str
) -> None:
    store = f"rollout_store: {{url: '{pg_database}'}}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with backends("legacy") as servers, UvicornThread(failing_app(every=4)) as bad:
        text = config_text({"legacy": servers["legacy"].url, "v2": bad.url}, FAILING, store)
        with strangler_run(tmp_path / "a", text) as a, strangler_run(tmp_path / "b", text) as b:
            leads = wait_until(
                lambda: one_driver(a, b), timeout=5, interval=0.2, message="one replica to drive"
            )
            driver, other = (a, b) if leads[0][1] else (b, a)
            started = httpx.post(f"{other.admin_url}/admin/rollout/api/start").json()
            assert (started["phase"], started["weight"]) == ("progressing", 50)
            with traffic(other) as served:  # only the replica that does not drive serves
                rolled = wait_until(
                    lambda: (s := status(driver))["phase"] == "rolled_back" and s,
                    timeout=30,
                    interval=0.2,
                    message="the rollout rolled back on the other replica's 5xx",
                )
            assert served[0].get("v2", 0) > 0
            # the driving replica served none of it: the evidence came from the other one
            assert 'strangler_requests_total{route="api"' not in driver.metrics()
            assert driving(driver)[1] and not driving(other)[1]
    assert rolled["weight"] == 0 and rolled["reason"].startswith("error_rate: v2 answered")
    failed = [v for v in rolled["history"] if v["outcome"] == "fail"]
    assert len(failed) == 2
    for verdict in failed:
        assert verdict["evidence"]["requests"]["v2"] >= 20 and verdict["evidence"]["errors"]["v2"]
