"""Writing a saga's messages into the transactional outbox, inside the caller's
transaction (the one that stores the state change, or a participant's effect).

The outbox table ``strangler_outbox`` belongs to the gateway (``strangler outbox init``
creates it; ``strangler outbox relay`` publishes it to ``events.{aggregate}``), as for
:mod:`strangler_events.eventstore.outbox`: the toolkit writes the same Debezium-shaped
columns without importing the gateway, and ``tests/strangler_events/saga/test_outbox.py``
reads the rows back with the gateway's own store so a change on either side fails there.
Row mapping: ``id`` = the message id, ``aggregatetype`` = its topic category,
``aggregateid`` = the instance id (the record key: one instance's messages stay in
order), ``type``, ``payload``, ``occurred_at``, ``headers`` (the relay copies them into
the envelope's ``metadata``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Final

from strangler_events.database.port import Tx
from strangler_events.saga.instance import Outgoing

TABLE: Final = "strangler_outbox"
COLUMNS: Final = "id, aggregatetype, aggregateid, type, payload, occurred_at, headers"
INSERT: Final = {
    "postgres": f"INSERT INTO {TABLE} ({COLUMNS})"
    " VALUES (?::uuid, ?, ?, ?, ?::jsonb, to_timestamp(?), ?::jsonb)",
    "sqlite": f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
}
MISSING_HINT: Final = (
    f"the outbox table {TABLE} does not exist in the saga store's database: create it with "
    "`strangler outbox init` (the relay's store URL must be this database)"
)


class OutboxMissing(RuntimeError):
    """The outbox table is not in the database the messages are written to."""


def dialect(url: str) -> str:
    """``postgres`` or ``sqlite``, from a database URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    if url.startswith("sqlite:"):
        return "sqlite"
    raise ValueError(f"database URL {url!r}: expected postgresql://... or sqlite:///...")


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


async def write(tx: Tx, kind: str, messages: Sequence[Outgoing], now: float | None = None) -> None:
    """Insert ``messages`` into the outbox in ``tx`` (``kind`` from :func:`dialect`)."""
    if not messages:
        return
    at = time.time() if now is None else now
    rows = [
        (m.id, m.topic, m.key, m.type, _dumps(m.payload), at, _dumps(m.headers)) for m in messages
    ]
    try:
        await tx.executemany(INSERT[kind], rows)
    except Exception as exc:
        if TABLE in str(exc) and ("does not exist" in str(exc) or "no such table" in str(exc)):
            raise OutboxMissing(MISSING_HINT) from exc
        raise
