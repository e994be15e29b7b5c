"""The event store: a new service's own source of truth, as append-only streams with
optimistic concurrency, on PostgreSQL (asyncpg) or SQLite (aiosqlite).

    store = open_event_store("postgresql://app@db/orders")
    await store.init()
    await store.append("order-42", [NewEvent("OrderPlaced", {"total": 10})], NO_STREAM)
    events = await store.read_stream("order-42")

:mod:`.port` has the types and the :class:`EventStore` protocol, :mod:`.factory` picks
the adapter, :mod:`.postgres` explains how subscribers stay gap-free, :mod:`.outbox`
how an append publishes through the gateway's relay, :mod:`.cli` the
``strangler events`` commands.
"""

from __future__ import annotations

from strangler_events.eventstore.factory import default_url, open_event_store
from strangler_events.eventstore.port import (
    ANY,
    CAUSATION_ID,
    CORRELATION_ID,
    DEFAULT_LIMIT,
    METADATA_KEYS,
    NO_STREAM,
    REQUEST_ID,
    STREAM_EXISTS,
    TRACEPARENT,
    AppendResult,
    DuplicateEventId,
    EventStore,
    EventStoreError,
    Expected,
    ExpectedState,
    InvalidStreamName,
    NewEvent,
    OutboxSpec,
    RecordedEvent,
    Snapshot,
    WrongExpectedVersion,
    category_of,
    partition_of,
    stream_hash,
    stream_id_of,
    stream_name,
    validate_category,
    validate_stream,
)

__all__ = [
    "ANY",
    "CAUSATION_ID",
    "CORRELATION_ID",
    "DEFAULT_LIMIT",
    "METADATA_KEYS",
    "NO_STREAM",
    "REQUEST_ID",
    "STREAM_EXISTS",
    "TRACEPARENT",
    "AppendResult",
    "DuplicateEventId",
    "EventStore",
    "EventStoreError",
    "Expected",
    "ExpectedState",
    "InvalidStreamName",
    "NewEvent",
    "OutboxSpec",
    "RecordedEvent",
    "Snapshot",
    "WrongExpectedVersion",
    "category_of",
    "default_url",
    "open_event_store",
    "partition_of",
    "stream_hash",
    "stream_id_of",
    "stream_name",
    "validate_category",
    "validate_stream",
]
