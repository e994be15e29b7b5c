"""k8s/monitoring: the Grafana dashboard and the Prometheus alert rules.

promtool checks the rules and runs their unit tests (series that fire each alert and
series that do not); kubectl builds the ConfigMaps; and a real Prometheus scraping a
running gateway (with a rollout started), outbox relay and event consumer runs every
query of the dashboard and of the rules, which must name only metrics those processes
export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from examples.order_service.app import create_app
from tests.eventually import eventually
from tests.gateway.support import fire, monolith, strangler_run, write_orders
from tests.harness import UvicornThread, free_port, wait_for_port
from tests.k8s import prometheus
from tests.k8s.promql import (
    concrete,
    dashboard_queries,
    metric_names,
    rule_queries,
    template_variables,
)

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "alert-rules.yaml"
RULE_TESTS = MONITORING / "alert-rules.test.yaml"

#: What the dashboard must show: traffic, errors and latency per route/backend, rollout
#: weights and verdicts, shadow match rate, outbox pending and age, relay published/failed,
#: consumer lag, dead letters.
SHOWN = {
    "strangler_requests_total",
    "strangler_request_duration_seconds_bucket",
    "strangler_upstream_errors_total",
    "strangler_rollout_weight",
    "strangler_rollout_verdicts_total",
    "strangler_shadow_comparisons_total",
    "strangler_outbox_pending",
    "strangler_outbox_lag_seconds",
    "strangler_relay_published_total",
    "strangler_relay_publish_errors_total",
    "strangler_consumer_lag",
    "strangler_consumer_dead_lettered_total",
}
ALERTS = {
    "StranglerUpstreamErrors",
    "StranglerHigh5xxShare",
    "StranglerShadowMatchRateDrop",
    "StranglerRolloutRolledBack",
    "StranglerOutboxOldestPendingTooOld",
    "StranglerRelayNotPublishing",
    "StranglerDeadLettersGrowing",
    "StranglerConsumerLagging",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus.binary("promtool"), *args],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- the files on their own --------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_fire_and_spare_every_alert() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(rule_queries(rules())) == ALERTS
    cases = [
        c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]
    ]
    assert {c["alertname"] for c in cases if c.get("exp_alerts")} == ALERTS  # fires
    assert {c["alertname"] for c in cases if not c.get("exp_alerts")} == ALERTS  # does not


def test_every_alert_waits_has_a_severity_and_names_what_it_is_about() -> None:
    for group in rules()["groups"]:
        for rule in group["rules"]:
            name = rule["alert"]
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: no for:"
            assert rule["labels"]["severity"] in ("warning", "critical"), name
            text = rule["annotations"]["summary"] + rule["annotations"]["description"]
            grouped = re.findall(r"\bby \(([^)]*)\)", rule["expr"])
            for label in {label.strip() for g in grouped for label in g.split(",")}:
                mention = "{{ $labels." + label + " }}"
                assert mention in text, f"{name}: says nothing of {label}"


def test_the_dashboard_is_grafana_json_on_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"] and all(
            t["datasource"] == panel["datasource"] for t in panel["targets"]
        )
    queries = dashboard_queries(board)
    for query in queries:
        assert template_variables(query) <= set(variables), query
        concrete(query)  # variables only inside =~ matchers
    used = set().union(*(metric_names(q) for q in queries))
    assert SHOWN <= used
    assert all(name.startswith("strangler_") for name in used), used


def test_kustomize_builds_the_dashboard_and_rules_config_maps() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(f"kubectl (1.21 or newer) is needed: run {prometheus.SETUP}", pytrace=False)
    result = subprocess.run(
        [kubectl, "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    maps = {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in yaml.safe_load_all(result.stdout)}
    board = maps["strangler-grafana-dashboard"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["strangler-gateway.json"]) == dashboard()
    assert (
        yaml.safe_load(maps["strangler-alert-rules"]["data"]["strangler-alert-rules.yaml"])
        == rules()
    )


# --- a real Prometheus on running processes ----------------------------------------------


def routes(legacy: str, service: str, tmp: Path, bootstrap: str, topics: str) -> str:
    """Reads shadowed to the order service, writes captured, a rollout to the order service
    (too little traffic to judge: its windows wait), and a backend that is gone."""
    return f"""\
version: 1
backends:
  legacy: {{url: "{legacy}", legacy: true}}
  order-service: {{url: "{service}"}}
  gone: {{url: "http://127.0.0.1:{free_port()}"}}
routes:
  - name: orders-reads
    match: {{prefix: /api/orders, methods: [GET]}}
    split: {{legacy: 100}}
    shadow: {{backend: order-service, percent: 100}}
  - name: orders-writes
    match: {{prefix: /api/orders}}
    split: {{legacy: 100}}
    capture:
      - {{method: POST, path: /api/orders, event: OrderCreated, aggregate: order,
          id: "response:/id"}}
      - {{method: PATCH, path: "/api/orders/{{id}}", event: OrderUpdated, aggregate: order,
          id: "path:id"}}
  - name: canary
    match: {{prefix: /canary}}
    split: {{order-service: 0, legacy: 100}}
    rollout: {{backend: order-service, steps: [50, 100], interval: 1s, min_requests: 1000}}
  - name: retired
    match: {{prefix: /retired}}
    split: {{gone: 100}}
outbox: {{url: "sqlite:///{tmp}/outbox.db", spool: "{tmp}/spool"}}
kafka: {{bootstrap: "{bootstrap}", topic: "{topics}"}}
shadow_store: {{url: "sqlite:///{tmp}/shadow.db"}}
rollout_store: {{url: "sqlite:///{tmp}/rollout.db"}}
"""


@contextmanager
def relay(config: Path, tmp: Path) -> Iterator[str]:
    """``strangler outbox relay --metrics-listen``; yields its metrics address."""
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "gateway.cli", "outbox", "relay", "-c", str(config)]
    with (tmp / "relay.log").open("wb") as log:
        proc = subprocess.Popen([*argv, "--metrics-listen", address], stdout=log, stderr=log)
    try:
        wait_for_port("127.0.0.1", int(address.rsplit(":", 1)[1]), 20, proc)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_stack(tmp: Path, bootstrap: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Monolith, order service, gateway (the canary route's rollout started) and relay, all
    running; the gateway's port and the scrape targets (job -> host:port)."""
    topics = f"mon{uuid.uuid4().hex[:8]}.{{aggregate}}"
    app = create_app(f"sqlite:///{tmp}/orders.db", bootstrap, topics.format(aggregate="order"))
    with monolith(tmp) as legacy, UvicornThread(app, lifespan="on") as service:
        text = routes(legacy.url, service.url, tmp, bootstrap, topics)
        with strangler_run(tmp, text) as gw, relay(gw.config_path, tmp) as relay_address:
            started = httpx.post(f"{gw.admin_url}/admin/rollout/canary/start", json={})
            assert started.status_code == 200, started.text
            yield (
                gw.port,
                {
                    "gateway": f"127.0.0.1:{gw.admin_port}",
                    "relay": relay_address,
                    "order-service": f"127.0.0.1:{service.port}",
                },
            )


async def test_prometheus_scraping_gateway_relay_and_consumer_runs_every_query(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    queries = dashboard_queries(dashboard())
    alerting = rule_queries(rules())
    needed = set().union(*(metric_names(q) for q in [*queries, *alerting.values()]))
    with running_stack(tmp_path, kafka_bootstrap) as (port, targets):
        written = await write_orders(port, orders=5, updates=2)  # captured, relayed, consumed
        reads: list[tuple[str, str, list[tuple[bytes, bytes]]]] = [
            ("GET", f"/api/orders/{ident}", []) for ident, _ in written
        ]  # shadowed
        replies = await fire(port, [*reads, *[("GET", "/retired/x", [])] * 3], concurrency=4)
        assert [r.status >= 500 for r in replies] == [False] * len(reads) + [True] * 3
        with prometheus.running(tmp_path / "prometheus", targets, [RULES]) as prom:
            await eventually(
                lambda: all_up(prom, set(targets)),
                timeout=15,
                interval=0.5,
                message="every target (gateway, relay, order service) scraped and up",
            )

            async def missing() -> bool:
                absent = sorted(needed - await prom.names())
                if absent:
                    raise AssertionError(f"not in Prometheus: {absent}")
                return True

            await eventually(missing, timeout=15, interval=0.5, message="every metric name")
            for query in [*map(concrete, queries), *alerting.values()]:
                await prom.query(query)  # an error answer raises at once, naming the query

            async def every_panel_has_data() -> bool:
                empty = [q for q in queries if not await prom.query(concrete(q))]
                if empty:
                    raise AssertionError(f"no series for: {empty}")
                return True

            await eventually(every_panel_has_data, timeout=10, interval=0.5)
            await eventually(
                lambda: rules_healthy(prom),
                timeout=10,
                interval=0.5,
                message="every rule evaluated by Prometheus without error",
            )


async def all_up(prom: prometheus.Prometheus, jobs: set[str]) -> dict[str, float] | None:
    up = await prom.up()
    return up if set(up) == jobs and all(v == 1.0 for v in up.values()) else None


async def rules_healthy(prom: prometheus.Prometheus) -> bool:
    data = await prom.api("rules")
    states = {
        r["name"]: (r["health"], r.get("lastError", "")) for g in data["groups"] for r in g["rules"]
    }
    if set(states) != ALERTS or any(h != "ok" for h, _ in states.values()):
        raise AssertionError(f"rule health: {states}")
    return True
