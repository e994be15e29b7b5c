"""The saga metrics: outcomes, step durations, timeouts, late replies, states."""

from __future__ import annotations

from prometheus_client import generate_latest

from strangler_events.saga.instance import Fact
from strangler_events.saga.metrics import SagaMetrics


def test_facts_are_counted_and_series_start_at_zero() -> None:
    m = SagaMetrics()
    m.prepare("s")
    text = generate_latest(m.registry).decode()
    assert 'strangler_saga_parked_total{saga="s"} 0.0' in text
    assert 'strangler_saga_instances{saga="s",state="running"} 0.0' in text
    m.count(
        "s",
        [Fact("started"), Fact("step", "a", 0.02), Fact("timeout", "b"), Fact("late", "b")]
        + [Fact("completed"), Fact("compensated"), Fact("parked")],
    )
    get = m.registry.get_sample_value
    for kind in ("started", "completed", "compensated", "parked"):
        assert get(f"strangler_saga_{kind}_total", {"saga": "s"}) == 1.0
    assert get("strangler_saga_step_seconds_count", {"saga": "s", "step": "a"}) == 1.0
    assert get("strangler_saga_timeouts_total", {"saga": "s", "step": "b"}) == 1.0
    assert get("strangler_saga_late_replies_total", {"saga": "s", "step": "b"}) == 1.0


def test_states_are_set_from_the_store_counts_missing_ones_to_zero() -> None:
    m = SagaMetrics()
    m.states("s", {("s", "running"): 3, ("other", "running"): 7})
    m.states("s", {("s", "parked"): 1})
    get = m.registry.get_sample_value
    assert get("strangler_saga_instances", {"saga": "s", "state": "running"}) == 0.0
    assert get("strangler_saga_instances", {"saga": "s", "state": "parked"}) == 1.0
