"""Diffy's noise filter: raw against noise, relative and absolute thresholds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadow.noise import is_significant, significant


def test_noise_cancels_a_field_that_differs_between_two_legacy_calls() -> None:
    raw = {"/generated_at": 100, "/request_uuid": 100, "/price": 40}
    noise = {"/generated_at": 100, "/request_uuid": 100}
    assert significant(raw, noise, 100, 0.2, 0.0003) == {"/price"}


def test_without_noise_estimate_every_raw_difference_is_reported() -> None:
    assert significant({"/a": 1, "/b": 0}, None, 100_000, 0.2, 0.0003) == {"/a"}


def test_thresholds() -> None:
    # raw barely above noise: relative difference 10/190 < 20%
    assert not is_significant(100, 90, 100, 0.2, 0.0003)
    assert is_significant(100, 50, 100, 0.2, 0.0003)
    # one difference in 100,000 comparisons is under the 0.03% absolute threshold
    assert not is_significant(1, 0, 100_000, 0.2, 0.0003)
    assert is_significant(1, 0, 1000, 0.2, 0.0003)
    assert not is_significant(5, 5, 100, 0.0, 0.0)
    assert not is_significant(0, 0, 0, 0.2, 0.0003)


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(1, 2000))
def test_never_significant_when_noise_is_at_least_raw(raw: int, noise: int, total: int) -> None:
    if noise >= raw:
        assert not is_significant(raw, noise, total, 0.0, 0.0)
