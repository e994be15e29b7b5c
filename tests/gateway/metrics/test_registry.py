"""Metrics registry, cross-process merge and the Prometheus text format."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics.registry import GatewayMetrics, Registry, merge, read_snapshots, render


def test_render_counter_gauge_histogram() -> None:
    r = Registry()
    c = r.counter("c_total", "A counter.", ("route",))
    c.inc(("a",))
    c.inc(("a",), 2)
    g = r.gauge("g", "A gauge.")
    g.inc()
    h = r.histogram("h_seconds", "A histogram.", ("route",), buckets=(0.1, 1.0))
    h.observe(("a",), 0.05)
    h.observe(("a",), 0.5)
    h.observe(("a",), 5)
    text = render(r.snapshot())
    assert 'c_total{route="a"} 3' in text
    assert "g 1" in text
    assert 'h_seconds_bucket{route="a",le="0.1"} 1' in text
    assert 'h_seconds_bucket{route="a",le="1"} 2' in text
    assert 'h_seconds_bucket{route="a",le="+Inf"} 3' in text
    assert 'h_seconds_count{route="a"} 3' in text and 'h_seconds_sum{route="a"} 5.55' in text
    assert "# TYPE h_seconds histogram" in text


def test_label_values_are_escaped() -> None:
    r = Registry()
    r.counter("x_total", "X.", ("v",)).inc(('a"b\\c',))
    assert 'x_total{v="a\\"b\\\\c"} 1' in render(r.snapshot())


def test_snapshots_merge_and_dead_workers_drop_gauges(tmp_path: Path) -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.requests.inc(("r", "legacy", "2xx"), 3)
    b.requests.inc(("r", "legacy", "2xx"), 4)
    a.in_flight.inc()
    b.in_flight.inc()
    a.registry.write(tmp_path)
    dead = tmp_path / "metrics-999999999.json"
    snapshot = json.loads((tmp_path / f"metrics-{os.getpid()}.json").read_text())
    snapshot["strangler_requests_total"]["values"] = [[["r", "legacy", "2xx"], 4]]
    dead.write_text(json.dumps(snapshot))
    merged = merge([*read_snapshots(tmp_path)])
    text = render(merged)
    assert 'strangler_requests_total{route="r",backend="legacy",status="2xx"} 7' in text
    assert "strangler_in_flight_requests 1" in text  # only the live process's gauge


def _families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_the_exposition_parses_as_prometheus_text() -> None:
    r = Registry()
    tricky = 'say "hi"\\now\nnext'
    hits = r.counter("hits_total", 'Hits, "quoted" \\ and\nsplit help.', ("route", "note"))
    hits.inc(("users", tricky), 3)
    hits.inc(("orders", ""))
    depth = r.gauge("queue_depth", "Depth.", ("queue",))
    depth.set(("a",), -2.5)
    depth.set(("b",), 1e21)
    r.gauge("up", "No labels.").set((), 1)
    took = r.histogram("took_seconds", "Took.", ("route",), buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 5):
        took.observe((tricky,), value)

    families = _families(render(r.snapshot()))

    assert {name: f.type for name, f in families.items()} == {
        "hits": "counter",  # the parser names a counter family without its _total
        "queue_depth": "gauge",
        "up": "gauge",
        "took_seconds": "histogram",
    }
    assert families["hits"].documentation == 'Hits, "quoted" \\ and\nsplit help.'
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("hits_total", (("note", tricky), ("route", "users")))] == 3
    assert samples[("hits_total", (("note", ""), ("route", "orders")))] == 1
    assert samples[("queue_depth", (("queue", "a"),))] == -2.5
    assert samples[("queue_depth", (("queue", "b"),))] == 1e21
    assert samples[("up", ())] == 1
    route = ("route", tricky)
    assert samples[("took_seconds_bucket", (("le", "0.1"), route))] == 1
    assert samples[("took_seconds_bucket", (("le", "1"), route))] == 2
    assert samples[("took_seconds_bucket", (("le", "+Inf"), route))] == 3
    assert samples[("took_seconds_count", (route,))] == 3
    assert samples[("took_seconds_sum", (route,))] == 5.55
    assert len(samples) == 10


def test_special_values_are_written_as_prometheus_spells_them() -> None:
    r = Registry()
    g = r.gauge("g", "G.", ("v",))
    g.set(("pos",), math.inf)
    g.set(("neg",), -math.inf)
    g.set(("nan",), math.nan)
    text = render(r.snapshot())
    assert 'g{v="pos"} +Inf' in text and 'g{v="neg"} -Inf' in text and 'g{v="nan"} NaN' in text
    values = {s.labels["v"]: s.value for s in _families(text)["g"].samples}
    assert values["pos"] == math.inf and values["neg"] == -math.inf and math.isnan(values["nan"])


def test_the_gateway_metrics_parse() -> None:
    m = GatewayMetrics()
    m.requests.inc(("r", "legacy", "2xx"))
    m.latency.observe(("r", "legacy"), 0.02)
    m.in_flight.inc()
    families = _families(render(m.registry.snapshot()))
    expected = {name.removesuffix("_total") for name in m.registry.metrics}
    assert set(families) == expected
    assert families["strangler_request_duration_seconds"].type == "histogram"
