"""The event store's pure decisions: what an append may hold, expected versions,
recognising a retried append, decoding rows, upcasting on read."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from strangler_events.eventstore.port import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    DuplicateEventId,
    EventStoreError,
    Expected,
    InvalidStreamName,
    NewEvent,
    WrongExpectedVersion,
)
from strangler_events.eventstore.rules import (
    MAX_EVENTS_PER_APPEND,
    Found,
    check_expected,
    decode_row,
    exact_version,
    expected_holds,
    prepare,
    retried_result,
    upcast_all,
    validate_expected,
    validate_limit,
    validate_snapshot,
)
from strangler_events.upcast import TooNew, Upcasters


def ev(type: str = "X", **kwargs: Any) -> NewEvent:
    return NewEvent(type, {}, **kwargs)


def test_prepare_canonicalises_ids_and_refuses_what_cannot_be_stored() -> None:
    upper = str(uuid.uuid4()).upper()
    (out,) = prepare("order-1", [ev(id=upper)])
    assert out.id == upper.lower()
    with pytest.raises(InvalidStreamName):
        prepare("order", [ev()])
    with pytest.raises(EventStoreError, match="nothing to append"):
        prepare("order-1", [])
    with pytest.raises(EventStoreError, match=f"expected at most {MAX_EVENTS_PER_APPEND}"):
        prepare("order-1", [ev()] * (MAX_EVENTS_PER_APPEND + 1))
    with pytest.raises(EventStoreError, match="type '' must be non-empty"):
        prepare("order-1", [ev("")])
    with pytest.raises(EventStoreError, match="schema_version 0, expected an integer >= 1"):
        prepare("order-1", [ev(schema_version=0)])
    with pytest.raises(EventStoreError, match="data and metadata must be dicts"):
        prepare("order-1", [NewEvent("X", [1, 2])])  # type: ignore[arg-type]
    with pytest.raises(EventStoreError, match="'nope' is not valid: expected a UUID"):
        prepare("order-1", [ev(id="nope")])


@pytest.mark.parametrize(
    ("expected", "actual", "holds"),
    [
        (ANY, 0, True),
        (ANY, 5, True),
        (NO_STREAM, 0, True),
        (NO_STREAM, 1, False),
        (STREAM_EXISTS, 0, False),
        (STREAM_EXISTS, 1, True),
        (0, 0, True),
        (3, 3, True),
        (3, 4, False),
    ],
)
def test_expected_versions(expected: Expected, actual: int, holds: bool) -> None:
    assert expected_holds(expected, actual) is holds
    if holds:
        check_expected("order-1", expected, actual)
    else:
        with pytest.raises(WrongExpectedVersion, match=f"actual version {actual}"):
            check_expected("order-1", expected, actual)


def test_exact_versions_and_invalid_expectations() -> None:
    assert [exact_version(e) for e in (ANY, STREAM_EXISTS, NO_STREAM, 0, 7)] == [
        None,
        None,
        0,
        0,
        7,
    ]
    for bad in (-1, False, 1.5, None):
        with pytest.raises(ValueError, match="expected ANY, NO_STREAM, STREAM_EXISTS"):
            validate_expected(bad)  # type: ignore[arg-type]


def found(events: list[NewEvent], first: int, stream: str = "order-1") -> list[Found]:
    return [Found(e.id, stream, first + i, 100 + first + i) for i, e in enumerate(events)]


def test_a_retry_is_the_same_ids_in_order_right_after_the_expected_version() -> None:
    batch = prepare("order-1", [ev(), ev()])
    assert retried_result("order-1", 2, batch, [], 2) is None  # nothing stored: new
    stored = found(batch, 3)
    expected_result = AppendResult(3, 4, 104)
    for expected in (2, ANY, STREAM_EXISTS):
        assert retried_result("order-1", expected, batch, stored, 9) == expected_result
    assert retried_result("order-1", NO_STREAM, batch, found(batch, 1), 2) == AppendResult(
        1, 2, 102
    )
    with pytest.raises(WrongExpectedVersion, match="expected version 1, actual version 9"):
        retried_result("order-1", 1, batch, stored, 9)
    with pytest.raises(WrongExpectedVersion):
        retried_result("order-1", NO_STREAM, batch, stored, 9)


def test_reused_ids_that_are_no_retry() -> None:
    batch = prepare("order-1", [ev(), ev()])
    with pytest.raises(DuplicateEventId, match="as part of a different append"):
        retried_result("order-1", ANY, batch, found(batch[:1], 1), 1)
    with pytest.raises(DuplicateEventId, match="in stream 'order-2'"):
        retried_result("order-1", ANY, batch, found(batch, 1, "order-2"), 0)
    swapped = [Found(batch[0].id, "order-1", 2, 2), Found(batch[1].id, "order-1", 1, 1)]
    with pytest.raises(DuplicateEventId, match=batch[0].id):
        retried_result("order-1", ANY, batch, swapped, 2)


def test_decode_row_and_upcasting() -> None:
    row = (7, "i-1", "order-1", 1, "Paid", 1, json.dumps({"amount": 2}), "{}", 12.5)
    event = decode_row(row)
    assert (event.position, event.id, event.version, event.data) == (7, "i-1", 1, {"amount": 2})
    assert event.recorded_at == 12.5 and event.category == "order"
    up = Upcasters()

    @up.register("Paid", 1)
    def cents(payload: dict[str, int]) -> dict[str, int]:
        return {"cents": payload["amount"] * 100}

    assert upcast_all([event], None) == [event]
    (upcast,) = upcast_all([event], up)
    assert (upcast.schema_version, upcast.data, upcast.position) == (2, {"cents": 200}, 7)
    current = decode_row((8, "i-2", "order-1", 2, "Paid", 2, '{"cents": 1}', "{}", 1.0))
    assert upcast_all([current], up)[0] is current
    future = decode_row((9, "i-3", "order-1", 3, "Paid", 3, "{}", "{}", 1.0))
    with pytest.raises(TooNew, match="newer than this consumer knows"):
        upcast_all([future], up)


def test_limits_and_snapshots_are_validated() -> None:
    validate_limit(None)
    validate_limit(1)
    for bad_limit in (0, -1, True):
        with pytest.raises(ValueError, match="expected an integer >= 1 or None"):
            validate_limit(bad_limit)
    validate_snapshot("account-1", 1, 1, {})
    with pytest.raises(ValueError, match="schema_version 0"):
        validate_snapshot("account-1", 1, 0, {})
    with pytest.raises(ValueError, match="state must be a dict, got list"):
        validate_snapshot("account-1", 1, 1, [])
    with pytest.raises(InvalidStreamName):
        validate_snapshot("account", 1, 1, {})
