"""The event store's decisions, shared by both adapters (pure: no I/O).

What an append may contain (:func:`prepare`), whether a stream's version is the one a
writer expected (:func:`check_expected`), whether ids already stored make an append a
retry of an earlier one (:func:`retried_result`), how a stored row becomes a
:class:`RecordedEvent` (:func:`decode_row`) and how upcasters apply on read
(:func:`upcast_all`).  The adapters only move rows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from strangler_events.envelope import Event
from strangler_events.eventstore.port import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    DuplicateEventId,
    EventStoreError,
    Expected,
    NewEvent,
    RecordedEvent,
    WrongExpectedVersion,
    validate_stream,
)
from strangler_events.upcast import Upcasters

# PostgreSQL positions are ``xid << ORDINAL_BITS | ordinal`` (see the adapter), so one
# append holds at most 2**ORDINAL_BITS events; SQLite keeps the same limit.
ORDINAL_BITS: Final = 16
MAX_EVENTS_PER_APPEND: Final = 1 << ORDINAL_BITS

# A test hook both adapters accept: awaited inside an append's transaction, after the
# insert, before the commit, with the stream and where the append landed (to hold a
# transaction open while others commit).
BeforeCommit = Callable[[str, AppendResult], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Found:
    """A stored event whose id is one of an append's ids."""

    id: str
    stream: str
    version: int
    position: int


_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical_id(stream: str, value: str) -> str:
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # the common case (``str(uuid4())``), without parsing it again
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise EventStoreError(
            f"stream {stream!r}: event id {value!r} is not valid: expected a UUID"
        ) from None


def prepare(stream: str, events: Sequence[NewEvent]) -> list[NewEvent]:
    """The events of an append with canonical ids, or an error naming what is wrong."""
    validate_stream(stream)
    if not events:
        raise EventStoreError(f"stream {stream!r}: nothing to append (expected 1 or more events)")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise EventStoreError(
            f"stream {stream!r}: {len(events)} events in one append, "
            f"expected at most {MAX_EVENTS_PER_APPEND}"
        )
    out: list[NewEvent] = []
    seen: set[str] = set()
    for e in events:
        ident = _canonical_id(stream, e.id)
        if ident in seen:
            raise DuplicateEventId(stream, ident, "twice in this append")
        seen.add(ident)
        if not isinstance(e.type, str) or not e.type:
            raise EventStoreError(f"stream {stream!r}: event type {e.type!r} must be non-empty")
        if not isinstance(e.schema_version, int) or e.schema_version < 1:
            raise EventStoreError(
                f"stream {stream!r}: {e.type} schema_version {e.schema_version!r}, "
                "expected an integer >= 1"
            )
        if not isinstance(e.data, dict) or not isinstance(e.metadata, dict):
            raise EventStoreError(f"stream {stream!r}: {e.type} data and metadata must be dicts")
        out.append(e if ident == e.id else replace(e, id=ident))
    return out


def validate_expected(expected: Expected) -> None:
    if isinstance(expected, bool) or not (
        expected in (ANY, NO_STREAM, STREAM_EXISTS) or (isinstance(expected, int) and expected >= 0)
    ):
        raise ValueError(
            f"expected version {expected!r} is not valid: expected ANY, NO_STREAM, "
            "STREAM_EXISTS or an integer >= 0"
        )


def expected_holds(expected: Expected, actual: int) -> bool:
    """Whether a stream at version ``actual`` (0: none) is what the writer expected."""
    if expected is ANY:
        return True
    if expected is STREAM_EXISTS:
        return actual > 0
    if expected is NO_STREAM:
        return actual == 0
    return actual == expected


def check_expected(stream: str, expected: Expected, actual: int) -> None:
    if not expected_holds(expected, actual):
        raise WrongExpectedVersion(stream, expected, actual)


def exact_version(expected: Expected) -> int | None:
    """The version an expectation pins (NO_STREAM pins 0), None when it pins none."""
    if expected is NO_STREAM:
        return 0
    return expected if isinstance(expected, int) else None


def retried_result(
    stream: str,
    expected: Expected,
    events: Sequence[NewEvent],
    found: Iterable[Found],
    actual: int,
) -> AppendResult | None:
    """When some of an append's ids are already stored: the first append's result if
    this is that append again (all ids, in this stream, consecutive, in the same order,
    right after the expected version); otherwise the error that says why not.  None
    when no id is stored (a new append)."""
    by_id = {f.id: f for f in found}
    if not by_id:
        return None
    rows = [by_id.get(e.id) for e in events]
    for e, row in zip(events, rows, strict=True):
        if row is not None and row.stream != stream:
            raise DuplicateEventId(stream, e.id, f"in stream {row.stream!r}")
    stored = [r for r in rows if r is not None]
    first = stored[0].version
    if len(stored) != len(events) or [r.version for r in stored] != list(
        range(first, first + len(events))
    ):
        missing = next(e.id for e, r in zip(events, rows, strict=True) if r is not None)
        raise DuplicateEventId(stream, missing, "as part of a different append")
    if not expected_holds(expected, first - 1):
        raise WrongExpectedVersion(stream, expected, actual)
    return AppendResult(first, stored[-1].version, max(r.position for r in stored))


# One encoder for every append: ``json.dumps`` with options builds a new one per call.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def dumps(value: dict[str, Any]) -> str:
    return _ENCODER.encode(value)


def decode_row(row: Sequence[Any]) -> RecordedEvent:
    """``(position, id, stream, version, type, schema_version, data_json, metadata_json,
    recorded_at)`` -> :class:`RecordedEvent` (both adapters select these columns)."""
    return RecordedEvent(
        id=str(row[1]),
        stream=row[2],
        version=row[3],
        position=row[0],
        type=row[4],
        schema_version=row[5],
        data=json.loads(row[6]),
        metadata=json.loads(row[7]),
        recorded_at=float(row[8]),
    )


def upcast_all(events: list[RecordedEvent], upcasters: Upcasters | None) -> list[RecordedEvent]:
    """Events brought up to their types' current schema versions (``TooNew`` propagates:
    the reader does not know that version yet)."""
    if upcasters is None:
        return events
    out = []
    for e in events:
        envelope = Event(
            e.id, e.type, e.category, e.stream_id, e.data, e.schema_version, e.recorded_at
        )
        upcast = upcasters.upcast(envelope)
        if upcast is envelope:
            out.append(e)
        else:
            out.append(replace(e, data=upcast.payload, schema_version=upcast.schema_version))
    return out


def validate_snapshot(stream: str, version: int, schema_version: int, state: object) -> None:
    validate_stream(stream)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"snapshot of {stream!r}: version {version!r}, expected an integer >= 1")
    if (
        isinstance(schema_version, bool)
        or not isinstance(schema_version, int)
        or schema_version < 1
    ):
        raise ValueError(
            f"snapshot of {stream!r}: schema_version {schema_version!r}, expected an integer >= 1"
        )
    if not isinstance(state, dict):
        raise ValueError(
            f"snapshot of {stream!r}: state must be a dict, got {type(state).__name__}"
        )


def validate_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit {limit!r} is not valid: expected an integer >= 1 or None")
