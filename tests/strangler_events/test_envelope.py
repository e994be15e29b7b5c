"""Decoding the relay's envelope, and refusing what is not one."""

from __future__ import annotations

import json

import pytest

from gateway.capture.kafka_sink import envelope
from gateway.capture.rules import Event as CapturedEvent
from strangler_events.envelope import BadEvent, Event, decode, encode


def test_the_relays_envelope_decodes() -> None:
    captured = CapturedEvent(
        "00000000-0000-4000-8000-000000000001",
        "order",
        "42",
        "OrderCreated",
        {"response": {"id": 42}},
        1_700_000_000.5,
        {"schema_version": 2, "source": "gateway"},
    )
    event = decode(envelope(captured))
    assert event == Event(
        captured.id,
        "OrderCreated",
        "order",
        "42",
        {"response": {"id": 42}},
        2,
        1_700_000_000.5,
        {"schema_version": 2, "source": "gateway"},
    )
    assert decode(encode(event)) == event


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "empty record"),
        (b"{oops", "not JSON"),
        (b"[1]", "expected a JSON object, got list"),
        (
            json.dumps({"id": "1", "type": "T"}).encode(),
            "missing or empty field(s): aggregatetype, aggregateid",
        ),
        (
            json.dumps(
                {
                    "id": "1",
                    "type": "T",
                    "aggregatetype": "a",
                    "aggregateid": "1",
                    "schema_version": "2",
                }
            ).encode(),
            "schema_version must be a positive integer, got '2'",
        ),
    ],
)
def test_what_is_not_an_event_is_refused_by_name(value: bytes | None, message: str) -> None:
    with pytest.raises(BadEvent) as info:
        decode(value)
    assert message in str(info.value)
