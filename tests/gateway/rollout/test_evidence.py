"""Evidence from counters taken when a window opened and now: deltas (never negative, a
reset counted as Prometheus does), bucket-interpolated p99s, and the sum over replicas:
new ones count from zero, a restarted one under a new id, a vanished one keeps its share."""

from __future__ import annotations

from typing import Any

from gateway.metrics.registry import GatewayMetrics
from gateway.rollout.evidence import (
    Counts,
    ShadowTally,
    across,
    between,
    counts,
    delta,
    evidence,
    quantile,
    total,
)

NONE = ShadowTally()
BUCKETS = (0.01, 0.1, 1.0)


def replica(ok: int, errors: int = 0, backend: str = "v2", fast: int | None = None) -> Counts:
    """One replica's counters of a route: ``ok`` 2xx and ``errors`` 5xx answers, of which
    ``fast`` (default all) took under 10 ms and the rest about 500 ms."""
    n = ok + errors
    quick = n if fast is None else fast
    row = [float(quick), 0.0, float(n - quick), 0.0, 0.01 * quick + 0.5 * (n - quick)]
    return Counts(
        {backend: float(n)}, {backend: float(errors)} if errors else {}, BUCKETS, {backend: row}
    )


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


def test_a_window_never_counts_negative_traffic() -> None:
    # A counter that went down (the replica's counters were reset) is not a negative delta:
    # what it counted since the reset is the window's.
    before = Counts({"v2": 100.0, "legacy": 900.0}, {"v2": 5.0}, BUCKETS, {"v2": [100.0] * 5})
    after = Counts({"v2": 30.0, "legacy": 950.0}, {}, BUCKETS, {"v2": [30.0, 0, 0, 0, 0.3]})
    ev = between(before, after, NONE)
    assert ev.requests == {"v2": 30, "legacy": 950} and ev.errors == {}
    assert all(n >= 0 for n in (*ev.requests.values(), *ev.errors.values()))
    assert ev.p99["v2"] <= 0.01
    # a backend missing now (a reset before it served again) counts nothing, not -100
    gone = between(before, Counts({"legacy": 10.0}), NONE)
    assert gone.requests == {"legacy": 10} and gone.errors == {} and gone.p99 == {}
    # whatever the input, no delta is below zero
    odd = delta(Counts({"v2": 5.0}), Counts({"v2": 5.0, "x": -3.0}))
    assert min(odd.requests.values()) == 0.0


def test_replicas_counters_are_summed() -> None:
    summed = total([replica(90, 10), replica(50, fast=0), replica(7, backend="legacy")])
    assert summed.requests == {"v2": 150.0, "legacy": 7.0} and summed.errors == {"v2": 10.0}
    assert summed.latency["v2"] == [100.0, 0.0, 50.0, 0.0, 26.0]
    # a replica with another bucket layout adds its requests but not its latency
    other = Counts({"v2": 5.0}, {}, (0.5,), {"v2": [5.0, 0.0, 1.0]})
    mixed = total([replica(10), other])
    assert mixed.requests == {"v2": 15.0} and mixed.latency["v2"][0] == 10.0
    assert total([]) == Counts()


def test_the_window_sums_every_replicas_difference() -> None:
    before = {"a": replica(100), "b": replica(40, 2), "gone": replica(30)}
    after = {
        "a": replica(120),  # +20 on the driving replica
        "b": replica(140, 12),  # +100 and +10 5xx served only by the other replica
        "new": replica(25, 5),  # started during the window: all of it counts
        "gone": replica(30),  # went away before the window: adds nothing
    }
    ev = evidence(across(before, after), NONE)
    assert ev.requests == {"v2": 20 + 110 + 30} and ev.errors == {"v2": 10 + 5}
    # a replica only in the baseline (its row no longer read) adds nothing either
    assert evidence(across(before, {"a": replica(120)}), NONE).requests == {"v2": 20}


def test_a_restarted_or_reset_replica_never_makes_evidence_negative() -> None:
    before = {"a": replica(1000, 10), "b": replica(500)}
    # a's counters were reset (same id): what it counted since the reset is its share;
    # b restarted as b2 (a new id) and its old row stays as it was
    after = {"a": replica(36, 4), "b": replica(500), "b2": replica(60)}
    ev = evidence(across(before, after), NONE)
    assert ev.requests == {"v2": 100} and ev.errors == {"v2": 4}


def test_p99_of_the_sum_sees_a_slow_replica() -> None:
    # the driving replica served fast answers only; the other one served the slow ones
    before = {"a": replica(0), "b": replica(0)}
    after = {"a": replica(50), "b": replica(50, fast=0)}
    assert evidence(across(before, after), NONE).p99["v2"] > 0.1
    assert evidence(across(before, {"a": replica(50)}), NONE).p99["v2"] <= 0.01


def test_counts_round_trip_through_json() -> None:
    c = replica(10, 2)
    assert Counts.from_json(c.to_json()) == c
    assert Counts.from_json({}) == Counts()
