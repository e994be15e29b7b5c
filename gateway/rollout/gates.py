"""Judging one rollout step's evidence against the route's gates (pure: no I/O).

:class:`Evidence` is what one interval showed: requests and 5xx per backend, p99 per
backend, and the shadow comparisons of the route (compared, matched, the endpoint and
field that differed most).  :func:`judge` answers ``pass``, ``fail`` (naming the gate,
its measured value and threshold) or ``wait``: too little traffic to say either, so
low traffic never promotes nor rolls back a step by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.config.model import Rollout

PASS, FAIL, WAIT = "pass", "fail", "wait"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one interval showed for one route."""

    requests: Mapping[str, int] = field(default_factory=dict)  # per backend
    errors: Mapping[str, int] = field(default_factory=dict)  # 5xx per backend
    p99: Mapping[str, float] = field(default_factory=dict)  # seconds, per backend with traffic
    compared: int = 0
    matched: int = 0
    endpoint: str = ""  # the endpoint with the most differing answers
    top_field: str = ""  # that endpoint's most often differing field

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(**{**data})


@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: str  # PASS | FAIL | WAIT
    gate: str = ""  # the failing (or waiting) gate
    measured: float | None = None
    threshold: float | None = None
    reason: str = ""


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _error_rate(ev: Evidence, rollout: Rollout) -> Judgement:
    gates, new = rollout.gates, rollout.backend
    requests = ev.requests.get(new, 0)
    if requests < rollout.min_requests:
        return Judgement(
            WAIT,
            "error_rate",
            requests,
            rollout.min_requests,
            f"{requests} requests to {new}, fewer than min_requests {rollout.min_requests}",
        )
    rate = _share(ev.errors.get(new, 0), requests)
    if gates.error_rate_max is not None and rate > gates.error_rate_max:
        return Judgement(
            FAIL,
            "error_rate",
            rate,
            gates.error_rate_max,
            f"error_rate: {new} answered {_pct(rate)} 5xx, above max {_pct(gates.error_rate_max)}",
        )
    others = [b for b in ev.requests if b != new]
    old_requests = sum(ev.requests.get(b, 0) for b in others)
    limit = gates.error_rate_max_over_legacy
    if limit is not None and old_requests:
        over = rate - _share(sum(ev.errors.get(b, 0) for b in others), old_requests)
        if over > limit:
            return Judgement(
                FAIL,
                "error_rate",
                over,
                limit,
                f"error_rate: {new} answered {_pct(over)} more 5xx than legacy, "
                f"above max_over_legacy {_pct(limit)}",
            )
    return Judgement(PASS, "error_rate", rate, gates.error_rate_max)


def _latency(ev: Evidence, rollout: Rollout) -> Judgement:
    limit, new = rollout.gates.latency_p99_max_ratio, rollout.backend
    old = [ev.p99[b] for b in ev.p99 if b != new and ev.p99[b] > 0]
    if ev.requests.get(new, 0) < rollout.min_requests:
        return Judgement(WAIT, "latency_p99", reason="too few requests to compare p99s")
    if limit is None or new not in ev.p99 or not old:
        return Judgement(PASS, "latency_p99")
    ratio = ev.p99[new] / max(old)
    if ratio > limit:
        return Judgement(
            FAIL,
            "latency_p99",
            ratio,
            limit,
            f"latency_p99: {new} p99 {ev.p99[new] * 1000:.1f}ms is {ratio:.2f}x legacy's "
            f"{max(old) * 1000:.1f}ms, above max_ratio {limit:.2f}",
        )
    return Judgement(PASS, "latency_p99", ratio, limit)


def _shadow(ev: Evidence, rollout: Rollout) -> Judgement:
    gates = rollout.gates
    if gates.shadow_match_min is None:
        return Judgement(PASS, "shadow_match")
    if ev.compared < gates.shadow_min_compared:
        return Judgement(
            WAIT,
            "shadow_match",
            ev.compared,
            gates.shadow_min_compared,
            f"{ev.compared} shadow comparisons, fewer than min_compared "
            f"{gates.shadow_min_compared}",
        )
    rate = _share(ev.matched, ev.compared)
    if rate < gates.shadow_match_min:
        where = f" on {ev.endpoint}" if ev.endpoint else ""
        what = f", most often in field {ev.top_field}" if ev.top_field else ""
        return Judgement(
            FAIL,
            "shadow_match",
            rate,
            gates.shadow_match_min,
            f"shadow_match: {_pct(rate)} of {ev.compared} answers matched{where}, below min "
            f"{_pct(gates.shadow_match_min)}{what}",
        )
    return Judgement(PASS, "shadow_match", rate, gates.shadow_match_min)


def judge(evidence: Evidence, rollout: Rollout) -> Judgement:
    """The first failing gate, else the first gate still waiting for evidence, else pass."""
    judged = [g(evidence, rollout) for g in (_error_rate, _latency, _shadow)]
    for outcome in (FAIL, WAIT):
        for judgement in judged:
            if judgement.outcome == outcome:
                return judgement
    return Judgement(PASS, reason="every gate passed")
