"""Metrics registry, cross-process merge and the Prometheus text format."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.metrics import GatewayMetrics, Registry, merge, read_snapshots, render


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
    dead.write_text((tmp_path / f"metrics-{os.getpid()}.json").read_text().replace("3]", "4]"))
    merged = merge([*read_snapshots(tmp_path)])
    text = render(merged)
    assert 'strangler_requests_total{route="r",backend="legacy",status="2xx"} 7' in text
    assert "strangler_in_flight_requests 1" in text  # only the live process's gauge
