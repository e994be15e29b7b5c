"""Deterministic sampling and endpoint templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow.sampling import Sampler, template


@given(st.floats(0, 100), st.integers(0, 3000))
def test_any_1000_consecutive_calls_hold_the_percentage(percent: float, offset: int) -> None:
    sampler = Sampler(percent)
    for _ in range(offset):
        sampler.take()
    taken = sum(sampler.take() for _ in range(1000))
    assert abs(taken - percent * 10) <= 1


def test_edges() -> None:
    assert not any(Sampler(0).take() for _ in range(1000))
    assert all(Sampler(100).take() for _ in range(1000))
    with pytest.raises(ValueError, match="0-100"):
        Sampler(101)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/orders", "/api/orders"),
        ("/api/orders/42", "/api/orders/{id}"),
        ("/api/orders/42/items/7", "/api/orders/{id}/items/{id}"),
        ("/u/9f1c2e3a-7b4d-4c1e-8a2b-1234567890ab", "/u/{id}"),
        ("/blob/deadbeefdeadbeefdeadbeef", "/blob/{id}"),
        ("/api/v2/orders", "/api/v2/orders"),
        ("/api/search-results", "/api/search-results"),
    ],
)
def test_templates(path: str, expected: str) -> None:
    assert template(path) == expected
