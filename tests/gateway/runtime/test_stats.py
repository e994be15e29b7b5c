"""The dashboard's per backend figures from metrics snapshots: rates over a window,
5xx share and latency quantiles of what happened between two samples; the shadow and
outbox panels' rows."""

from __future__ import annotations

from typing import Any

from gateway.capture.outbox import Heartbeat, RelayState, Status
from gateway.metrics.registry import GatewayMetrics
from gateway.runtime.stats import (
    TOP_FIELDS,
    Window,
    backend_stats,
    outbox_stats,
    sample,
    shadow_stats,
)
from shadow.store import FieldDiff, Result


def snapshot(ok: int, errors: int, seconds: float) -> dict[str, Any]:
    metrics = GatewayMetrics()
    metrics.requests.inc(("api", "v2", "2xx"), ok)
    metrics.requests.inc(("api", "v2", "5xx"), errors)
    for _ in range(ok + errors):
        metrics.latency.observe(("api", "v2"), seconds)
    return metrics.registry.snapshot()


def test_without_an_earlier_sample_the_figures_cover_everything_and_the_rate_is_unknown() -> None:
    now = sample(snapshot(90, 10, 0.003), ["api"], at=100.0)
    [row] = backend_stats(None, now)
    assert row["route"] == "api" and row["backend"] == "v2"
    assert row["requests"] == 100 and row["rps"] is None and row["error_pct"] == 10.0
    assert 0.001 < row["p50"] <= 0.005 and 0.001 < row["p99"] <= 0.005


def test_figures_are_the_difference_between_two_samples() -> None:
    before = sample(snapshot(90, 10, 0.003), ["api"], at=100.0)
    after = sample(snapshot(190, 10, 0.003), ["api"], at=102.0)
    [row] = backend_stats(before, after)
    assert row["requests"] == 200  # the total so far
    assert row["rps"] == 50.0  # 100 more requests in 2 s
    assert row["error_pct"] == 0.0  # none of the new ones failed


def test_no_new_requests_means_no_share_and_no_latency() -> None:
    before = sample(snapshot(5, 0, 0.2), ["api"], at=1.0)
    after = sample(snapshot(5, 0, 0.2), ["api"], at=2.0)
    [row] = backend_stats(before, after)
    assert (row["rps"], row["error_pct"], row["p50"], row["p99"]) == (0.0, None, None, None)


def test_routes_without_traffic_have_no_rows() -> None:
    assert backend_stats(None, sample(snapshot(1, 0, 0.1), ["other"], at=1.0)) == []


def test_the_window_measures_against_the_oldest_sample_within_its_span() -> None:
    window = Window(span=5.0)
    first = sample({}, [], at=0.0)
    assert window.add(first) is None
    assert window.add(sample({}, [], at=2.0)) is first
    assert window.add(sample({}, [], at=4.0)) is first
    baseline = window.add(sample({}, [], at=9.0))
    assert baseline is not None and baseline.at == 4.0  # the newest at least 5 s old
    assert len(window.samples) == 2


def compared(n: int, *paths: str) -> Result:
    diffs = tuple(FieldDiff(p, "changed", "a", "b") for p in paths)
    return Result(
        float(n),
        "api",
        "GET",
        "/api/{id}",
        "compared",
        request_id=f"r{n}",
        shadow_backend="v2",
        diffs=diffs,
    )


def test_shadow_rows_give_the_match_rate_and_the_top_differing_fields_with_examples() -> None:
    results = [compared(i) for i in range(96)]
    results += [compared(100, "/total", "/a", "/b", "/c"), compared(101, "/total", "/a")]
    results += [compared(102, "/total"), compared(103, "/total")]
    [row] = shadow_stats(results)
    assert (row["route"], row["method"], row["endpoint"]) == ("api", "GET", "/api/{id}")
    assert (row["shadow_backend"], row["compared"], row["matched"]) == ("v2", 100, 96)
    assert (row["differing"], row["match_pct"]) == (4, 96.0)
    assert len(row["fields"]) == TOP_FIELDS == 3
    top = row["fields"][0]
    assert (top["path"], top["count"]) == ("/total", 4)
    assert top["examples"] == ["r100", "r101", "r102", "r103"]
    assert row["fields"][1]["path"] == "/a" and row["fields"][1]["count"] == 2


def test_no_shadow_results_means_no_rows() -> None:
    assert shadow_stats([]) == []


def test_the_outbox_row_carries_its_backlog() -> None:
    row = outbox_stats(Status(3, 12.34567, 40, 1, 2))
    assert row == {
        "relay": None,
        "pending": 3,
        "oldest_pending_age": 12.346,
        "published": 40,
        "doubts": 1,
        "blocked": 2,
    }
    assert outbox_stats(Status(0, None, 0, 0, 0))["oldest_pending_age"] is None


def test_the_outbox_row_carries_the_relays_state() -> None:
    relay = RelayState(Heartbeat("relay-1", 5.0, 8.0, 16, None, "round failed: x", 1.0), 16.0)
    shown = outbox_stats(Status(0, None, 16, 0, 0), relay)["relay"]
    assert (shown["holder"], shown["stale"], shown["rate"]) == ("relay-1", True, 2.0)
    assert (shown["leading_for"], shown["last_publish_age"]) == (24.0, None)
    assert (shown["last_error"], shown["last_error_age"]) == ("round failed: x", 17.0)
