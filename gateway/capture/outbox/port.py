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

The leading relay also writes a :class:`Heartbeat` about once a second (one row, replaced
by each beat and removed when it resigns); :meth:`OutboxStore.relay_state` reads it back
with its age by the store's clock (PostgreSQL's, so the reader's clock does not matter),
and the state is *stale* once that age exceeds :data:`STALE_AFTER_LEASES` lease TTLs: the
relay died without resigning, or cannot reach the store.  ``strangler outbox status`` and
the dashboard show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.capture.rules import Doubt, Event

SCHEMA_VERSION = 1
STALE_AFTER_LEASES = 3  # a relay heartbeat older than this many lease TTLs is stale


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


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What the leading relay says about itself, as of one beat (durations in seconds)."""

    holder: str
    lease: float  # its lease TTL
    leading_for: float  # since it took the lease
    published: int  # events it published since then
    last_publish_ago: float | None = None  # from its last publish to this beat
    last_error: str = ""  # its last failed round or parked event
    last_error_ago: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "lease": self.lease,
            "leading_for": self.leading_for,
            "published": self.published,
            "last_publish_ago": self.last_publish_ago,
            "last_error": self.last_error,
            "last_error_ago": self.last_error_ago,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Heartbeat:
        return cls(
            str(data["holder"]),
            float(data["lease"]),
            float(data["leading_for"]),
            int(data["published"]),
            _seconds(data.get("last_publish_ago")),
            str(data.get("last_error") or ""),
            _seconds(data.get("last_error_ago")),
        )


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _later(ago: float | None, age: float) -> float | None:
    return None if ago is None else round(ago + age, 3)


@dataclass(frozen=True, slots=True)
class RelayState:
    """The last heartbeat and how old it is now (by the store's clock)."""

    beat: Heartbeat
    age: float

    @property
    def stale(self) -> bool:
        """No beat for :data:`STALE_AFTER_LEASES` lease TTLs: the relay is gone or stuck."""
        return self.age > STALE_AFTER_LEASES * self.beat.lease

    def to_json(self) -> dict[str, Any]:
        """As ``strangler outbox status --format json`` and the dashboard show it: ages as
        of now, the average publish rate since the relay took the lease."""
        b = self.beat
        return {
            "holder": b.holder,
            "stale": self.stale,
            "heartbeat_age": round(self.age, 3),
            "lease": b.lease,
            "leading_for": round(b.leading_for + self.age, 3),
            "published": b.published,
            "rate": round(b.published / b.leading_for, 2) if b.leading_for > 0 else None,
            "last_publish_age": _later(b.last_publish_ago, self.age),
            "last_error": b.last_error,
            "last_error_age": _later(b.last_error_ago, self.age),
        }


class OutboxStore(Protocol):
    url: str

    async def init(self) -> None:
        """Create or migrate the schema (idempotent)."""

    async def append(self, events: Sequence[Event], doubts: Sequence[Doubt] = ()) -> None:
        """Insert events and doubts in one transaction; an event id already there is skipped."""

    async def pending(self, limit: int, after: int = 0) -> list[Row]:
        """Unpublished rows with ``seq > after``, oldest first, leaving out aggregates blocked
        by a failed row."""

    async def late(self, upto: int, unmarked: int) -> bool:
        """Whether a row with ``seq <= upto`` that :meth:`pending` would return is there
        besides the ``unmarked`` ones the relay holds: a row whose transaction took its
        seq before rows read past it and committed after them."""

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

    async def resign(self, holder: str) -> None:
        """Give the lease up and remove ``holder``'s heartbeat."""

    async def heartbeat(self, beat: Heartbeat) -> None:
        """Record the leading relay's state, replacing the previous beat."""

    async def relay_state(self) -> RelayState | None:
        """The last heartbeat with its age; None when no relay leads (or it resigned)."""

    async def wait_for_rows(self, timeout: float) -> None:
        """Return when new rows may be there (a notification, or the timeout)."""

    async def close(self) -> None: ...
