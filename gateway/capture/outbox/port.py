"""The outbox store port: what the capture recorder, the relay and the CLI need from a database.

Two adapters implement it: :mod:`gateway.capture.outbox.postgres` (asyncpg, production)
and :mod:`gateway.capture.outbox.sqlite` (aiosqlite, the embedded default).  One contract
test suite runs against both.  Adapters translate driver errors into
:class:`OutboxUnavailable` (retriable: the database could not be reached) or
:class:`OutboxError` (anything else), with ``raise ... from exc``::

    OutboxError
     └── OutboxUnavailable   retriable = True

Rows are ordered by ``seq``.  Per aggregate, ``seq`` order is write order: events
of one aggregate come from requests the client made one after another (the
gateway commits an event before it answers), or from the monolith's own
transactions, which take the row lock before the trigger inserts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.capture.rules import Doubt, Event

SCHEMA_VERSION = 1


class OutboxError(Exception):
    retriable = False


class OutboxUnavailable(OutboxError):
    retriable = True


@dataclass(slots=True)
class Row:
    seq: int
    event: Event
    attempts: int = 0


@dataclass(slots=True)
class Blocked:
    seq: int
    id: str
    aggregatetype: str
    aggregateid: str
    error: str


@dataclass(slots=True)
class Status:
    pending: int
    oldest_pending_age: float | None  # seconds
    published: int
    doubts: int
    blocked: int


class OutboxStore(Protocol):
    url: str

    async def init(self) -> None:
        """Create or migrate the schema (idempotent)."""

    async def append(self, events: Sequence[Event], doubts: Sequence[Doubt] = ()) -> None:
        """Insert events and doubts in one transaction; an event id already there is skipped."""

    async def pending(self, limit: int, after: int = 0) -> list[Row]:
        """Unpublished rows with ``seq > after``, oldest first, leaving out aggregates blocked
        by a failed row."""

    async def mark_published(self, seqs: Sequence[int]) -> None: ...

    async def mark_failed(self, seq: int, error: str) -> None:
        """Park a row that cannot be published; it blocks its aggregate until skipped."""

    async def skip(self, event_id: str) -> bool:
        """Operator decision: never publish this row; unblocks its aggregate."""

    async def blocked(self) -> list[Blocked]: ...

    async def status(self) -> Status: ...

    async def doubts(self, limit: int = 1000) -> list[Doubt]: ...

    async def purge(self, older_than: float) -> int:
        """Delete rows published more than ``older_than`` seconds ago."""

    async def lead(self, holder: str, ttl: float) -> bool:
        """Become or stay the one active relay; False while another holds the lease."""

    async def resign(self, holder: str) -> None: ...

    async def wait_for_rows(self, timeout: float) -> None:
        """Return when new rows may be there (a notification, or the timeout)."""

    async def close(self) -> None: ...
