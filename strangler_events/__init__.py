"""strangler_events: the toolkit for the new services that consume the change events the
gateway publishes (one Kafka topic per aggregate type, the envelope of
:mod:`strangler_events.envelope`).

It stands alone: it imports nothing of the gateway or of shadow, and the gateway may
import it.  What it offers:

- :class:`ResilientConsumer` (with :class:`ConsumerMetrics`, on ``prometheus_client``):
  per-partition ordered handling, retries with backoff, a dead-letter topic;
- :class:`Event`, :func:`decode`, :func:`encode`, :class:`BadEvent`: the envelope;
- :class:`Upcasters` and :class:`TooNew`: older schema versions brought up to date;
- :class:`Inbox`: a re-delivered event has no second effect;
- :class:`Projection`: read models kept, rebuilt and re-projected from the topics;
- :func:`records`, :class:`DeadLetter`, :func:`dead_letters`, :func:`replay`: reading a
  topic back, the dead-letter topic;
- :func:`open_database`, :class:`Database`, :class:`Tx`, :class:`DatabaseError`: one
  transaction seam on SQLite and PostgreSQL;
- the write side: :func:`open_event_store` (:mod:`strangler_events.eventstore`, optimistic
  concurrency, gap-free reads), :class:`Aggregate`, :class:`DomainEvent`, :func:`command`,
  :func:`applies`, :class:`Repository`, :func:`handle`; the given-when-then kit is
  :mod:`strangler_events.testing`;
- :class:`PositionMismatch`: a stored position that no longer fits the log.

(:func:`strangler_events.history.history` and :func:`strangler_events.reconcile.reconcile`
share their module's name, so they are imported from their modules.)

Names are imported on first use (module ``__getattr__``), so importing one module of
the toolkit (say :mod:`strangler_events.storage.sqlite`) does not import Kafka's client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from strangler_events.topics import DEAD_LETTER_TOPIC

_HOMES = {
    "ConsumerMetrics": "strangler_events.consumer",
    "Handler": "strangler_events.consumer",
    "ResilientConsumer": "strangler_events.consumer",
    "BadEvent": "strangler_events.envelope",
    "Event": "strangler_events.envelope",
    "decode": "strangler_events.envelope",
    "encode": "strangler_events.envelope",
    "TooNew": "strangler_events.upcast",
    "Upcasters": "strangler_events.upcast",
    "Inbox": "strangler_events.inbox",
    "Projection": "strangler_events.projection",
    "records": "strangler_events.history",
    "DeadLetter": "strangler_events.dlq",
    "dead_letters": "strangler_events.dlq",
    "replay": "strangler_events.dlq",
    "Database": "strangler_events.database",
    "DatabaseError": "strangler_events.database",
    "Tx": "strangler_events.database",
    "open_database": "strangler_events.database",
    "open_event_store": "strangler_events.eventstore.factory",
    "Aggregate": "strangler_events.aggregate",
    "DomainEvent": "strangler_events.aggregate",
    "applies": "strangler_events.aggregate",
    "command": "strangler_events.aggregate",
    "Repository": "strangler_events.repository",
    "handle": "strangler_events.repository",
    "CommandConflict": "strangler_events.repository",
    "PositionMismatch": "strangler_events.mismatch",
}

__all__ = [
    "DEAD_LETTER_TOPIC",
    "Aggregate",
    "CommandConflict",
    "DomainEvent",
    "PositionMismatch",
    "Repository",
    "applies",
    "command",
    "handle",
    "open_event_store",
    "BadEvent",
    "ConsumerMetrics",
    "Database",
    "DatabaseError",
    "DeadLetter",
    "Event",
    "Handler",
    "Inbox",
    "Projection",
    "ResilientConsumer",
    "TooNew",
    "Tx",
    "Upcasters",
    "dead_letters",
    "decode",
    "encode",
    "open_database",
    "records",
    "replay",
]

if TYPE_CHECKING:
    from strangler_events.aggregate import Aggregate, DomainEvent, applies, command
    from strangler_events.consumer import ConsumerMetrics, Handler, ResilientConsumer
    from strangler_events.database import Database, DatabaseError, Tx, open_database
    from strangler_events.dlq import DeadLetter, dead_letters, replay
    from strangler_events.envelope import BadEvent, Event, decode, encode
    from strangler_events.eventstore.factory import open_event_store
    from strangler_events.history import records
    from strangler_events.inbox import Inbox
    from strangler_events.mismatch import PositionMismatch
    from strangler_events.projection import Projection
    from strangler_events.repository import CommandConflict, Repository, handle
    from strangler_events.upcast import TooNew, Upcasters


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'strangler_events' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # the next look-up does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
