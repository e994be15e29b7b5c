"""Picks the event store adapter for a URL: PostgreSQL (production) or SQLite
(embedded, tests, a single process)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from strangler_events.eventstore.port import EventStore, EventStoreError

ENV_URL: Final = "STRANGLER_EVENT_STORE"
DEFAULT_URL: Final = "sqlite:///./events.db"


def open_event_store(url: str) -> EventStore:
    """The adapter for a ``postgresql://`` or ``sqlite:///`` URL (not connected yet:
    the first call connects; call ``init()`` to create the tables)."""
    if url.startswith(("postgresql://", "postgres://")):
        from strangler_events.eventstore.postgres import PostgresEventStore

        return PostgresEventStore(url)
    if url.startswith("sqlite:///"):
        from strangler_events.eventstore.sqlite import SqliteEventStore

        return SqliteEventStore(url)
    raise EventStoreError(
        f"event store URL {url!r} is not supported: expected postgresql://... or sqlite:///PATH"
    )


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """``$STRANGLER_EVENT_STORE``, else ``sqlite:///./events.db``."""
    env = os.environ if environ is None else environ
    return env.get(ENV_URL) or DEFAULT_URL
