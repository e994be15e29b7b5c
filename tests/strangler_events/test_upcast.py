"""Upcasting chains, and versions this consumer does not know."""

from __future__ import annotations

from typing import Any

import pytest

from strangler_events.envelope import Event
from strangler_events.upcast import TooNew, Upcasters


def registered() -> Upcasters:
    up = Upcasters()

    @up.register("UserRegistered", 1)
    def add_profile(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "profile": {"name": "Unknown"}}

    @up.register("UserRegistered", 2)
    def add_locale(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "locale": "en"}

    return up


def event(version: int, payload: Any) -> Event:
    return Event("e1", "UserRegistered", "user", "7", payload, schema_version=version)


def test_v1_goes_through_every_step() -> None:
    up = registered()
    assert up.current("UserRegistered") == 3
    out = up.upcast(event(1, {"email": "a@b"}))
    assert out.schema_version == 3
    assert out.payload == {"email": "a@b", "profile": {"name": "Unknown"}, "locale": "en"}
    v2 = up.upcast(event(2, {"email": "a@b", "profile": {"name": "Ann"}}))
    assert v2.payload == {"email": "a@b", "profile": {"name": "Ann"}, "locale": "en"}
    current = event(3, {"x": 1})
    assert up.upcast(current) is current


def test_newer_than_known_is_refused_with_the_reason() -> None:
    with pytest.raises(
        TooNew,
        match="UserRegistered schema_version 4 is newer than this consumer knows \\(up to 3\\)",
    ):
        registered().upcast(event(4, {}))
    plain = Upcasters()
    with pytest.raises(TooNew, match="up to 1"):
        plain.upcast(event(2, {}))


def test_a_gap_in_the_chain_and_duplicates_are_errors() -> None:
    up = Upcasters()
    up.register("T", 2)(lambda p: p)
    with pytest.raises(TooNew, match="no upcaster from v1 to v2"):
        up.upcast(Event("e", "T", "a", "1", {}, schema_version=1))
    with pytest.raises(ValueError, match="already has an upcaster"):
        up.register("T", 2)(lambda p: p)
