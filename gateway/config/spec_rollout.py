"""The shape of a route's ``rollout:`` block and of ``rollout_store:`` (part of
:mod:`gateway.config.spec`, kept apart to keep that module one screenful per idea).
Percentages are written with their sign and read as fractions."""

from __future__ import annotations

import re
from typing import Any

from gateway.config.schema import Bool, Checker, Duration, Field, Int, ListOf, Num, Obj, Spec, Str

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


class Percent(Spec):
    """A percentage written with its sign (``"1%"``, ``"99.5%"``), read as a fraction (0.01)."""

    description = 'a percentage such as "1%" or "99.5%"'

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        found = _PERCENT.fullmatch(value.strip()) if isinstance(value, str) else None
        if found is None:
            return self.expected(value, path, ck)
        number = float(found.group(1))
        if number > 100:
            return ck.problem(path, f'expected a percentage between 0% and 100%, got "{value}"')
        return number / 100

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^\d+(\.\d+)?%$", "description": self.description}


def _step_shorthand(value: Any) -> Any:
    return {"weight": value} if isinstance(value, int) and not isinstance(value, bool) else value


STEP = Obj(
    {
        "weight": Field(
            Int(description="the new backend's weight", minimum=0, maximum=100), required=True
        ),
        "approve": Field(
            Bool(), default=False, doc="wait for an operator's approve before this step"
        ),
        "interval": Field(Duration(), doc="this step's interval (default: the rollout's)"),
    },
    description="a weight such as 25, or {weight: 75, approve: true, interval: 5m}",
    shorthand=_step_shorthand,
)

ERROR_RATE = Obj(
    {
        "max": Field(Percent(), default=0.01, doc="the new backend's 5xx share"),
        "max_over_legacy": Field(
            Percent(), default=0.005, doc="the new backend's 5xx share above legacy's"
        ),
    }
)
LATENCY_P99 = Obj({"max_ratio": Field(Num(minimum=1), default=1.25, doc="new p99 / legacy p99")})
SHADOW_MATCH = Obj(
    {
        "min": Field(Percent(), default=0.995, doc="shadow answers matching the primary's"),
        "min_compared": Field(Int(minimum=1), default=100, doc="comparisons before judging"),
    }
)
GATES = Obj(
    {
        "error_rate": Field(ERROR_RATE, default={}),
        "latency_p99": Field(LATENCY_P99, default={}),
        "shadow_match": Field(SHADOW_MATCH, doc="off unless written"),
    }
)

ROLLOUT = Obj(
    {
        "backend": Field(Str(), required=True, doc="the new backend whose weight is stepped up"),
        "steps": Field(ListOf(STEP, min_items=1), required=True),
        "interval": Field(Duration(), default=60.0),
        "min_requests": Field(
            Int(minimum=1), default=200, doc="requests to the new backend before a step is judged"
        ),
        "gates": Field(GATES, default={}),
        "failures_before_rollback": Field(Int(minimum=1), default=2),
    }
)

ROLLOUT_STORE = Obj({"url": Field(Str(), default="sqlite:///./strangler-rollout.db")})
