"""Every gate: pass, fail (naming the gate, the measured value and the threshold) and wait."""

from __future__ import annotations

from gateway.config.model import Gates, Rollout, Step
from gateway.rollout.gates import FAIL, PASS, WAIT, Evidence, judge

ROLLOUT = Rollout(
    backend="v2",
    steps=(Step(5), Step(100)),
    min_requests=200,
    gates=Gates(0.01, 0.005, 1.25, 0.995, 100),
)


def evidence(**kw: object) -> Evidence:
    base: dict[str, object] = {
        "requests": {"v2": 1000, "legacy": 1000},
        "errors": {},
        "p99": {"v2": 0.010, "legacy": 0.010},
        "compared": 1000,
        "matched": 1000,
    }
    return Evidence(**{**base, **kw})  # type: ignore[arg-type]


def test_a_good_version_passes_every_gate() -> None:
    assert judge(evidence(), ROLLOUT).outcome == PASS


def test_three_percent_5xx_fails_the_error_rate_gate() -> None:
    got = judge(evidence(errors={"v2": 30}), ROLLOUT)
    assert (got.outcome, got.gate, got.measured, got.threshold) == (FAIL, "error_rate", 0.03, 0.01)
    assert got.reason == "error_rate: v2 answered 3.00% 5xx, above max 1.00%"


def test_errors_above_legacy_fail_even_under_the_absolute_max() -> None:
    got = judge(evidence(errors={"v2": 8, "legacy": 1}), ROLLOUT)
    assert (got.outcome, got.gate) == (FAIL, "error_rate")
    assert got.measured is not None and abs(got.measured - 0.007) < 1e-9
    assert "more 5xx than legacy, above max_over_legacy 0.50%" in got.reason


def test_errors_as_common_as_legacys_pass() -> None:
    assert judge(evidence(errors={"v2": 8, "legacy": 7}), ROLLOUT).outcome == PASS


def test_twice_slower_p99_fails_the_latency_gate() -> None:
    got = judge(evidence(p99={"v2": 0.040, "legacy": 0.020}), ROLLOUT)
    assert (got.outcome, got.gate, got.measured, got.threshold) == (FAIL, "latency_p99", 2.0, 1.25)
    assert got.reason == "latency_p99: v2 p99 40.0ms is 2.00x legacy's 20.0ms, above max_ratio 1.25"


def test_slightly_slower_p99_passes() -> None:
    assert judge(evidence(p99={"v2": 0.012, "legacy": 0.010}), ROLLOUT).outcome == PASS


def test_two_percent_differing_answers_fail_the_shadow_gate() -> None:
    got = judge(evidence(matched=980, endpoint="GET /api/orders/{id}", top_field="/total"), ROLLOUT)
    assert (got.outcome, got.gate, got.measured, got.threshold) == (
        FAIL,
        "shadow_match",
        0.98,
        0.995,
    )
    assert got.reason == (
        "shadow_match: 98.00% of 1000 answers matched on GET /api/orders/{id}, below min "
        "99.50%, most often in field /total"
    )


def test_low_traffic_waits() -> None:
    got = judge(evidence(requests={"v2": 199, "legacy": 5000}, errors={"v2": 100}), ROLLOUT)
    assert (got.outcome, got.gate, got.measured, got.threshold) == (WAIT, "error_rate", 199, 200)


def test_few_comparisons_wait_for_the_shadow_gate() -> None:
    got = judge(evidence(compared=99, matched=50), ROLLOUT)
    assert (got.outcome, got.gate, got.measured, got.threshold) == (WAIT, "shadow_match", 99, 100)


def test_gates_turned_off_are_not_judged() -> None:
    off = Rollout("v2", (Step(5),), gates=Gates(None, None, None, None), min_requests=1)
    got = judge(evidence(errors={"v2": 900}, p99={"v2": 9.0, "legacy": 0.01}, matched=0), off)
    assert got.outcome == PASS


def test_evidence_round_trips_through_json() -> None:
    ev = evidence(endpoint="GET /a", top_field="/x")
    assert Evidence.from_json(ev.to_json()) == ev
