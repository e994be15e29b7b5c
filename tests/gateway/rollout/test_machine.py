"""Every transition of the rollout state machine, and the issue's three failure scenarios."""

from __future__ import annotations

import pytest

from gateway.config.model import Gates, Rollout, Step
from gateway.rollout.gates import Evidence
from gateway.rollout.machine import (
    PAUSED,
    PENDING,
    PROGRESSING,
    PROMOTED,
    ROLLED_BACK,
    WAITING,
    Abort,
    Approve,
    InvalidTransition,
    Pause,
    Resume,
    Start,
    State,
    Tick,
    apply,
    initial,
)

ROLLOUT = Rollout(
    backend="v2",
    steps=(Step(5), Step(25), Step(50), Step(75, approve=True), Step(100)),
    interval=10.0,
    min_requests=200,
    gates=Gates(0.01, 0.005, 1.25, 0.995, 100),
    failures_before_rollback=2,
)
GOOD = Evidence(
    requests={"v2": 1000, "legacy": 1000},
    errors={},
    p99={"v2": 0.01, "legacy": 0.01},
    compared=500,
    matched=500,
)


def started(at: float = 0.0) -> State:
    return apply(initial("orders", ROLLOUT), ROLLOUT, Start(at))


def test_start_enters_the_first_step() -> None:
    state = started()
    assert (state.phase, state.step, state.weight, state.window_start) == (PROGRESSING, 0, 5, 0.0)


def test_a_tick_before_the_interval_changes_nothing() -> None:
    state = started()
    assert apply(state, ROLLOUT, Tick(9.9, GOOD)) == state


def test_a_good_version_steps_up_waits_for_approval_then_is_promoted() -> None:
    state = started()
    weights = [state.weight]
    for now in (10.0, 20.0, 30.0):
        state = apply(state, ROLLOUT, Tick(now, GOOD))
        weights.append(state.weight)
    assert weights == [5, 25, 50, 50]
    assert (state.phase, state.step) == (WAITING, 3)
    assert apply(state, ROLLOUT, Tick(99.0, GOOD)) == state  # waiting is not judged
    state = apply(state, ROLLOUT, Approve(40.0))
    assert (state.phase, state.weight, state.window_start) == (PROGRESSING, 75, 40.0)
    state = apply(state, ROLLOUT, Tick(50.0, GOOD))
    assert (state.phase, state.weight) == (PROMOTED, 100)
    assert [(v.step, v.weight, v.outcome) for v in state.history] == [
        (0, 5, "pass"),
        (1, 25, "pass"),
        (2, 50, "pass"),
        (3, 75, "pass"),
    ]
    assert all(v.evidence == GOOD for v in state.history)


def roll_until_done(evidence: Evidence) -> State:
    state = started()
    for now in (10.0, 20.0, 30.0):
        state = apply(state, ROLLOUT, Tick(now, evidence))
        if state.phase != PROGRESSING:
            break
    return state


def test_three_percent_5xx_is_rolled_back_after_two_failed_intervals() -> None:
    state = started()
    bad = Evidence(requests={"v2": 1000, "legacy": 1000}, errors={"v2": 30})
    state = apply(state, ROLLOUT, Tick(10.0, bad))
    assert (state.phase, state.failures, state.weight, state.window_start) == (
        PROGRESSING,
        1,
        5,
        10.0,
    )
    state = apply(state, ROLLOUT, Tick(20.0, bad))
    assert (state.phase, state.weight) == (ROLLED_BACK, 0)
    assert state.reason == "error_rate: v2 answered 3.00% 5xx, above max 1.00%"
    last = state.history[-1]
    assert (last.gate, last.measured, last.threshold) == ("error_rate", 0.03, 0.01)


def test_twice_slower_p99_is_rolled_back() -> None:
    slow = Evidence(requests={"v2": 1000, "legacy": 1000}, p99={"v2": 0.04, "legacy": 0.02})
    state = roll_until_done(slow)
    assert (state.phase, state.weight, state.history[-1].gate) == (ROLLED_BACK, 0, "latency_p99")
    assert state.history[-1].measured == 2.0


def test_two_percent_wrong_field_is_rolled_back_by_the_shadow_gate() -> None:
    wrong = Evidence(
        requests={"v2": 1000, "legacy": 1000},
        errors={},
        p99={"v2": 0.01, "legacy": 0.01},
        compared=1000,
        matched=980,
        endpoint="GET /api/orders/{id}",
        top_field="/total",
    )
    state = roll_until_done(wrong)
    assert (state.phase, state.weight) == (ROLLED_BACK, 0)
    assert "shadow_match" in state.reason
    assert "GET /api/orders/{id}" in state.reason and "/total" in state.reason
    assert state.history[-1].measured == 0.98


def test_a_pass_between_failures_resets_the_count() -> None:
    bad = Evidence(requests={"v2": 1000}, errors={"v2": 30})
    state = apply(started(), ROLLOUT, Tick(10.0, bad))
    state = apply(state, ROLLOUT, Tick(20.0, GOOD))
    assert (state.step, state.failures) == (1, 0)
    state = apply(state, ROLLOUT, Tick(30.0, bad))
    assert (state.phase, state.failures) == (PROGRESSING, 1)


def test_low_traffic_neither_promotes_nor_rolls_back() -> None:
    quiet = Evidence(requests={"v2": 10, "legacy": 190}, errors={"v2": 10})
    state = started()
    for now in (10.0, 20.0, 30.0, 40.0):
        state = apply(state, ROLLOUT, Tick(now, quiet))
    assert (state.phase, state.step, state.weight, state.failures) == (PROGRESSING, 0, 5, 0)
    assert state.window_start == 0.0  # the window stays open and gathers more evidence
    assert [v.outcome for v in state.history] == ["wait"]  # one entry, kept up to date
    assert state.history[-1].at == 40.0


def test_pause_holds_the_weight_and_resume_reopens_the_window() -> None:
    state = apply(started(), ROLLOUT, Pause(5.0))
    assert (state.phase, state.weight, state.resume_to) == (PAUSED, 5, PROGRESSING)
    assert apply(state, ROLLOUT, Tick(100.0, GOOD)) == state
    state = apply(state, ROLLOUT, Resume(100.0))
    assert (state.phase, state.window_start) == (PROGRESSING, 100.0)


def test_pause_while_waiting_resumes_waiting() -> None:
    state = started()
    for now in (10.0, 20.0, 30.0):
        state = apply(state, ROLLOUT, Tick(now, GOOD))
    state = apply(apply(state, ROLLOUT, Pause(31.0)), ROLLOUT, Resume(32.0))
    assert (state.phase, state.weight) == (WAITING, 50)


@pytest.mark.parametrize("phase", [PROGRESSING, WAITING, PAUSED, PENDING])
def test_abort_goes_back_to_weight_zero_at_once(phase: str) -> None:
    state = State("orders", "v2", phase=phase, step=1, weight=25)
    state = apply(state, ROLLOUT, Abort(3.0))
    assert (state.phase, state.weight, state.reason) == (ROLLED_BACK, 0, "aborted by an operator")


def test_a_rolled_back_rollout_can_start_again() -> None:
    state = apply(apply(started(), ROLLOUT, Abort(1.0)), ROLLOUT, Start(2.0))
    assert (state.phase, state.weight, state.reason) == (PROGRESSING, 5, "")


@pytest.mark.parametrize(
    ("phase", "event", "message"),
    [
        (PROGRESSING, Start(0.0), "cannot start: the rollout of orders is progressing"),
        (PROGRESSING, Approve(0.0), "nothing to approve: the rollout of orders is progressing"),
        (PENDING, Pause(0.0), "cannot pause: the rollout of orders is pending"),
        (PROGRESSING, Resume(0.0), "cannot resume: the rollout of orders is progressing"),
        (PROMOTED, Abort(0.0), "cannot abort: the rollout of orders is promoted"),
    ],
)
def test_events_the_phase_refuses(phase: str, event: object, message: str) -> None:
    with pytest.raises(InvalidTransition, match=message):
        apply(State("orders", "v2", phase=phase), ROLLOUT, event)  # type: ignore[arg-type]


def test_a_step_of_100_promotes_and_state_round_trips_through_json() -> None:
    short = Rollout("v2", (Step(50), Step(100)), interval=1.0, min_requests=1)
    state = apply(apply(initial("r", short), short, Start(0.0)), short, Tick(1.0, GOOD))
    assert (state.phase, state.weight) == (PROMOTED, 100)
    assert State.from_json(state.to_json()) == state
