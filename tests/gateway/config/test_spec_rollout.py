"""The rollout block's own shapes: percentages and step shorthands."""

from __future__ import annotations

from gateway.config.schema import Checker
from gateway.config.spec_rollout import STEP, Percent
from gateway.config.yamlsource import load


def _check(spec: object, value: object) -> tuple[object, list[str]]:
    ck = Checker(load("x: 1\n", "r.yaml"), "r.yaml")
    checked = spec.check(value, "", ck)  # type: ignore[attr-defined]
    return checked, [p.message for p in ck.problems]


def test_percentages_are_read_as_fractions() -> None:
    assert _check(Percent(), "1%") == (0.01, [])
    assert _check(Percent(), " 99.5% ") == (0.995, [])
    assert _check(Percent(), "101%")[1] == ['expected a percentage between 0% and 100%, got "101%"']
    assert _check(Percent(), 0.5)[1] == [
        'expected a percentage such as "1%" or "99.5%", got a number (0.5)'
    ]


def test_a_bare_weight_is_a_step() -> None:
    checked, problems = _check(STEP, 25)
    assert problems == [] and checked == {"weight": 25, "approve": False, "interval": None}
