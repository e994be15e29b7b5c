"""The origin markers are the names the gateway, the triggers and the monolith agree on."""

from __future__ import annotations

from strangler_events import origin


def test_the_names() -> None:
    assert origin.ORIGIN_HEADER == origin.ORIGIN_HEADER.lower()  # headers compare lowercased
    assert origin.ORIGIN_HEADER.startswith("x-strangler-")
    assert origin.EVENT_ID_HEADER.startswith("x-strangler-")
    assert "." in origin.ORIGIN_SETTING  # a custom PostgreSQL setting needs a prefix
    assert origin.REVERSE_SYNC == "reverse-sync"
