"""Outlier ejection with an injected clock."""

from __future__ import annotations

from gateway.config import Outlier
from gateway.proxy.outlier import Outliers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ejects_after_consecutive_failures_and_recovers() -> None:
    clock = Clock()
    outliers = Outliers(
        {"new": Outlier(consecutive_failures=3, base_ejection=10, max_ejection=25)}, clock
    )
    assert not outliers.failure("new") and not outliers.failure("new")
    outliers.success("new")  # the streak is broken
    assert not outliers.failure("new") and not outliers.failure("new")
    assert outliers.failure("new")
    assert outliers.ejected() == frozenset({"new"})
    clock.now = 10.1
    assert outliers.ejected() == frozenset()


def test_ejection_grows_on_repeat_up_to_the_maximum() -> None:
    clock = Clock()
    outliers = Outliers(
        {"new": Outlier(consecutive_failures=1, base_ejection=10, max_ejection=25)}, clock
    )
    periods = []
    for _ in range(4):
        start = clock.now
        assert outliers.failure("new")
        while outliers.ejected():
            clock.now += 1
        periods.append(clock.now - start)
    assert periods == [10, 20, 25, 25]


def test_unknown_backends_use_defaults() -> None:
    outliers = Outliers({}, Clock())
    assert not any(outliers.failure("x") for _ in range(4))
    assert outliers.failure("x")  # the fifth consecutive failure (default)


def test_max_ejected_percent_keeps_enough_backends_in_service() -> None:
    clock = Clock()
    half = Outlier(consecutive_failures=1, base_ejection=10, max_ejected_percent=50)
    outliers = Outliers({"a": half, "b": half, "c": half, "d": half}, clock)
    assert outliers.failure("a") and outliers.failure("b")  # 2 of 4: 50%
    assert not outliers.failure("c")  # a third would be 75%
    assert outliers.ejected() == frozenset({"a", "b"})
    clock.now = 10.1  # a and b are back: c may go now
    assert outliers.failure("c")
    assert outliers.ejected() == frozenset({"c"})
