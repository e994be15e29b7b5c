"""What an append writes into the transactional outbox when asked to publish (pure).

The outbox table belongs to the gateway (``gateway/capture/outbox/{sqlite,postgres}.py``
create it; ``strangler outbox relay`` publishes it).  The toolkit does not import the
gateway, so the INSERT is written here against the same columns -- the Debezium
outbox shape -- and ``tests/strangler_events/eventstore/test_outbox.py`` creates the
table with the gateway's own ``open_store(url).init()`` and reads the rows back with
its ``pending()``, so a change on either side fails that test.

Row mapping: ``id`` = the event id, ``aggregatetype`` = the topic category (the relay's
``kafka.topic`` template ``events.{aggregate}`` makes it the topic), ``aggregateid`` =
the stream's id part (the record key), ``type``, ``payload`` = the event data,
``occurred_at`` = when it was recorded, ``headers`` = the event's metadata plus
``schema_version`` (which the relay copies into the envelope), ``stream``,
``stream_version`` and ``position``.
"""

from __future__ import annotations

from typing import Any, Final

from strangler_events.eventstore.port import (
    OutboxSpec,
    category_of,
    stream_id_of,
    validate_category,
)

TABLE: Final = "strangler_outbox"
COLUMNS: Final = ("id", "aggregatetype", "aggregateid", "type", "payload", "occurred_at", "headers")
MISSING_HINT: Final = (
    "the outbox table strangler_outbox does not exist in the event store's database: "
    "create it with `strangler outbox init` (the relay's store URL must be this database)"
)


def aggregate(stream: str, spec: OutboxSpec) -> tuple[str, str]:
    """``(aggregatetype, aggregateid)`` of a stream's rows."""
    category = spec.topic_category or category_of(stream)
    return validate_category(category), stream_id_of(stream)


def headers(
    metadata: dict[str, Any], schema_version: int, stream: str, version: int, position: int
) -> dict[str, Any]:
    return {
        **metadata,
        "schema_version": schema_version,
        "stream": stream,
        "stream_version": version,
        "position": position,
    }
