"""Exchange records are plain values shared by the proxy, capture and the mirror."""

from __future__ import annotations

from gateway.capture import rules
from gateway.http.exchange import Exchange, Sample


def test_capture_uses_the_shared_record() -> None:
    assert rules.Exchange is Exchange


def test_records_are_plain_values() -> None:
    exchange = Exchange("orders", "POST", "/api/orders", "legacy", 201, "r1", {}, b"{}", {}, b"{}")
    assert exchange.traceparent is None
    sample = Sample(
        "orders", "GET", "/a", b"/a?x=1", [], b"", "legacy", 200, [], b"{}", 0.01, "r2", 1.0
    )
    assert sample.target == b"/a?x=1"
