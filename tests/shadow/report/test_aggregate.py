"""The report: counts, noise-filtered fields, examples, latency, and the three formats."""

from __future__ import annotations

from shadow.report.aggregate import Thresholds, build, percentile
from shadow.store import FieldDiff, Result


def row(n: int, diffs: tuple[FieldDiff, ...] = (), noise: tuple[str, ...] | None = None) -> Result:
    return Result(
        at=1_700_000_000.0 + n,
        route="orders",
        method="GET",
        endpoint="/api/orders/{id}",
        outcome="compared",
        request_id=f"req-{n}",
        primary_backend="legacy",
        shadow_backend="v2",
        primary_status=200,
        shadow_status=200,
        primary_ms=float(n % 10 + 1),
        shadow_ms=float(n % 10 + 2),
        diffs=diffs,
        noise=noise,
        values_kept=True,
    )


TS = FieldDiff("/generated_at", "value", "1", "2")
PRICE = FieldDiff("/price", "value", "10", "11")


def test_identical_results_are_all_matched_with_no_fields() -> None:
    report = build([row(n) for n in range(50)])
    [e] = report.endpoints
    assert (e.compared, e.matched, e.differing, e.fields) == (50, 50, 0, [])
    assert e.match_rate == 1.0


def test_field_counts_kinds_and_examples() -> None:
    rows = [row(n, (PRICE,) if n < 12 else ()) for n in range(100)]
    [e] = build(rows).endpoints
    assert (e.compared, e.matched, e.differing) == (100, 88, 12)
    [f] = e.fields
    assert (f.path, f.kind, f.raw, f.noise) == ("/price", "value", 12, None)
    assert [x.request_id for x in f.examples] == [f"req-{n}" for n in range(5)]
    assert (f.examples[0].primary, f.examples[0].shadow) == ("10", "11")


def test_noise_cancellation_suppresses_fields_that_differ_between_legacy_calls() -> None:
    rows = [row(n, (TS, PRICE) if n < 30 else (TS,), noise=("/generated_at",)) for n in range(100)]
    [e] = build(rows).endpoints
    assert e.noise_cancellation
    assert [(f.path, f.raw, f.noise) for f in e.fields] == [("/price", 30, 0)]
    assert e.suppressed == ["/generated_at"]
    assert (e.matched, e.differing) == (70, 30)


def test_without_noise_every_field_is_reported() -> None:
    rows = [row(n, (TS,)) for n in range(10)]
    [e] = build(rows).endpoints
    assert [f.path for f in e.fields] == ["/generated_at"]
    assert e.differing == 10


def test_route_thresholds_apply() -> None:
    # noise 70 vs raw 100: relative difference 30/170 = 17.6%: noise at 20%, real at 10%
    rows = [row(n, (PRICE,), noise=("/price",) if n < 70 else ()) for n in range(100)]
    assert build(rows).endpoints[0].fields == []
    strict = build(rows, {"orders": Thresholds(relative=0.1)})
    assert [f.path for f in strict.endpoints[0].fields] == ["/price"]


def test_shed_skipped_errors_and_latency() -> None:
    rows = [row(n) for n in range(100)] + [
        Result(1_700_000_200.0, "orders", "GET", "/api/orders/{id}", "shed", count=40),
        Result(1_700_000_200.0, "orders", "GET", "/api/orders/{id}", "skipped", 3, "too-large"),
        Result(
            1_700_000_201.0, "orders", "GET", "/api/orders/{id}", "error", 1, "shadow timeout: x"
        ),
    ]
    [e] = build(rows).endpoints
    assert (e.shed, e.skipped, e.errors) == (40, 3, 1)
    assert e.skip_reasons == {"too-large": 3}
    assert e.error_reasons == {"shadow timeout": 1}
    assert (e.primary_ms.p50, e.primary_ms.p99) == (5.0, 10.0)
    assert (e.shadow_ms.p50, e.shadow_ms.p99) == (6.0, 11.0)


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0


def test_timeline_tracks_match_rate_over_time() -> None:
    rows = [row(n, (PRICE,) if n < 50 else ()) for n in range(100)]
    points = build(rows, buckets=2).timeline
    assert [(p.compared, p.matched) for p in points] == [(50, 0), (50, 50)]
