"""A route's rollout as a state machine (pure: events in, the next state out).

Phases: ``pending`` -> ``progressing`` (step i, the new backend at that step's weight)
-> ``waiting_for_approval`` (before a step marked ``approve: true``) -> ``promoted``
(weight 100) | ``rolled_back`` (weight 0, with the failed gate, its measured value and
threshold as the reason) | ``paused`` (weight held).

Events: :class:`Start`, :class:`Tick` (the time and the evidence gathered since the
step's window opened), :class:`Approve`, :class:`Pause`, :class:`Resume`, :class:`Abort`.
A tick judges the window once the step's interval has passed: ``pass`` moves to the next
step, ``wait`` keeps the window open (low traffic decides nothing), ``fail`` counts one
failure and opens a new window; ``failures_before_rollback`` consecutive failures roll
back.  Every judged window is recorded as a :class:`Verdict` with its evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gateway.config.model import Rollout
from gateway.rollout.gates import PASS, WAIT, Evidence, judge

PENDING = "pending"
PROGRESSING = "progressing"
WAITING = "waiting_for_approval"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
PAUSED = "paused"
ACTIVE = (PROGRESSING, WAITING, PAUSED)


class InvalidTransition(Exception):
    """An event that the rollout's phase does not accept (e.g. approve while progressing)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judged window of one step."""

    at: float
    step: int
    weight: int
    outcome: str  # pass | fail | wait
    gate: str
    measured: float | None
    threshold: float | None
    reason: str
    evidence: Evidence

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["evidence"] = self.evidence.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(**{**data, "evidence": Evidence.from_json(data["evidence"])})


@dataclass(frozen=True, slots=True)
class State:
    route: str
    backend: str
    phase: str = PENDING
    step: int = -1  # index into the rollout's steps; -1 before the first
    weight: int = 0  # the new backend's weight now
    window_start: float = 0.0  # when the current step's evidence window opened
    failures: int = 0  # consecutive failed windows of this step
    reason: str = ""  # why the rollout is where it is (rolled back, paused)
    resume_to: str = ""  # the phase a paused rollout resumes
    history: tuple[Verdict, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = [v.to_json() for v in self.history]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> State:
        return cls(**{**data, "history": tuple(Verdict.from_json(v) for v in data["history"])})


@dataclass(frozen=True, slots=True)
class Start:
    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    now: float
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Approve:
    now: float


@dataclass(frozen=True, slots=True)
class Pause:
    now: float


@dataclass(frozen=True, slots=True)
class Resume:
    now: float


@dataclass(frozen=True, slots=True)
class Abort:
    now: float
    reason: str = "aborted by an operator"


Event = Start | Tick | Approve | Pause | Resume | Abort


def initial(route: str, rollout: Rollout, weight: int = 0) -> State:
    """A rollout not started yet; ``weight`` is the new backend's configured weight."""
    return State(route, rollout.backend, weight=weight)


def _enter(state: State, rollout: Rollout, index: int, now: float) -> State:
    """Move to step ``index``: wait for approval first when the step asks for it."""
    if index >= len(rollout.steps):
        return replace(state, phase=PROMOTED, weight=100, failures=0, reason="every step passed")
    step = rollout.steps[index]
    if step.approve and state.phase != WAITING:
        return replace(state, phase=WAITING, step=index, failures=0, window_start=now)
    if step.weight >= 100:
        return replace(
            state, phase=PROMOTED, step=index, weight=100, failures=0, reason="every step passed"
        )
    return replace(
        state, phase=PROGRESSING, step=index, weight=step.weight, failures=0, window_start=now
    )


def _record(state: State, verdict: Verdict) -> tuple[Verdict, ...]:
    """The history with ``verdict``; a wait replaces the same step's previous wait."""
    last = state.history[-1] if state.history else None
    if (
        verdict.outcome == WAIT
        and last is not None
        and last.outcome == WAIT
        and last.step == verdict.step
    ):
        return (*state.history[:-1], verdict)
    return (*state.history, verdict)


def _tick(state: State, rollout: Rollout, now: float, evidence: Evidence) -> State:
    if state.phase != PROGRESSING or now - state.window_start < rollout.interval_of(state.step):
        return state
    got = judge(evidence, rollout)
    verdict = Verdict(
        now, state.step, state.weight, got.outcome, got.gate, got.measured, got.threshold,
        got.reason, evidence,
    )  # fmt: skip
    state = replace(state, history=_record(state, verdict))
    if got.outcome == PASS:
        return _enter(state, rollout, state.step + 1, now)
    if got.outcome == WAIT:
        return state
    failures = state.failures + 1
    if failures >= rollout.failures_before_rollback:
        return replace(
            state, phase=ROLLED_BACK, weight=0, failures=failures, reason=got.reason or got.gate
        )
    return replace(state, failures=failures, window_start=now)


def apply(state: State, rollout: Rollout, event: Event) -> State:
    """The state after ``event``; :class:`InvalidTransition` when the phase refuses it."""
    phase = state.phase
    if isinstance(event, Tick):
        return _tick(state, rollout, event.now, event.evidence)
    if isinstance(event, Start):
        if phase not in (PENDING, ROLLED_BACK):
            raise InvalidTransition(f"cannot start: the rollout of {state.route} is {phase}")
        fresh = replace(state, phase=PENDING, reason="", failures=0)
        return _enter(fresh, rollout, 0, event.now)
    if isinstance(event, Approve):
        if phase != WAITING:
            raise InvalidTransition(f"nothing to approve: the rollout of {state.route} is {phase}")
        return _enter(state, rollout, state.step, event.now)
    if isinstance(event, Pause):
        if phase not in (PROGRESSING, WAITING):
            raise InvalidTransition(f"cannot pause: the rollout of {state.route} is {phase}")
        return replace(state, phase=PAUSED, resume_to=phase, reason="paused by an operator")
    if isinstance(event, Resume):
        if phase != PAUSED:
            raise InvalidTransition(f"cannot resume: the rollout of {state.route} is {phase}")
        return replace(
            state, phase=state.resume_to, resume_to="", reason="", window_start=event.now
        )
    if phase in (PROMOTED, ROLLED_BACK):
        raise InvalidTransition(f"cannot abort: the rollout of {state.route} is {phase}")
    return replace(state, phase=ROLLED_BACK, weight=0, reason=event.reason, resume_to="")
