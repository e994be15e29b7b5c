"""Evidence from two merged metrics snapshots: deltas and bucket-interpolated p99s."""

from __future__ import annotations

from typing import Any

from gateway.metrics.registry import GatewayMetrics
from gateway.rollout.evidence import ShadowTally, between, counts, quantile


def snapshot(metrics: GatewayMetrics) -> dict[str, Any]:
    return metrics.registry.snapshot()


def test_the_window_counts_only_what_happened_in_it() -> None:
    m = GatewayMetrics()
    m.requests.inc(("api", "v2", "2xx"), 50)
    m.latency.observe(("api", "v2"), 0.5)
    before = counts(snapshot(m), "api")
    m.requests.inc(("api", "v2", "2xx"), 97)
    m.requests.inc(("api", "v2", "5xx"), 3)
    m.requests.inc(("api", "legacy", "2xx"), 900)
    m.requests.inc(("other", "v2", "5xx"), 40)
    for _ in range(100):
        m.latency.observe(("api", "v2"), 0.02)
        m.latency.observe(("api", "legacy"), 0.002)
    ev = between(before, counts(snapshot(m), "api"), ShadowTally(10, 9, "GET /a", "/x"))
    assert ev.requests == {"v2": 100, "legacy": 900}
    assert ev.errors == {"v2": 3}
    assert 0.01 < ev.p99["v2"] <= 0.05 and 0.001 < ev.p99["legacy"] <= 0.005
    assert (ev.compared, ev.matched, ev.endpoint, ev.top_field) == (10, 9, "GET /a", "/x")


def test_quantile_interpolates_within_the_bucket() -> None:
    assert quantile((1.0, 2.0), [0.0, 10.0, 0.0, 15.0], 0.5) == 1.5
    assert quantile((1.0,), [0.0, 0.0, 0.0], 0.99) is None
