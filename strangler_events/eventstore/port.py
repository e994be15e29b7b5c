"""The event store seam: what a service's write side appends and reads back.

Types, errors and the :class:`EventStore` protocol only (no I/O);
:func:`strangler_events.eventstore.factory.open_event_store` picks the adapter
(PostgreSQL or SQLite) for a URL.

    >>> from strangler_events.eventstore.port import NewEvent, NO_STREAM
    >>> opened = NewEvent("AccountOpened", {"owner": "ada"})
    >>> # result = await store.append("account-42", [opened], expected=NO_STREAM)

Streams are named ``{category}-{id}`` (``order-42``): the category is the text before
the first ``-``, the id is everything after it (it may contain ``-``, so a uuid is a
fine id).  Stream versions start at 1; ``stream_version`` of a stream that does not
exist is 0.  Global positions only grow, and a subscriber that reads
``read_all(after_position=p)`` never has an event with a lower position appear
later (the adapters make reads gap-free; see each adapter's module docstring).

Consumer groups: ``member``/``size`` on the category and all reads keep the events
of the streams with ``partition_of(stream, size) == member`` -- a CRC-32 of the
stream name (UTF-8) modulo ``size``, stored with each event, so one stream's
events always go to one member, both adapters agree, and the members together see
everything.
"""

from __future__ import annotations

import enum
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol
from uuid import uuid4

if TYPE_CHECKING:
    from strangler_events.upcast import Upcasters

# The metadata keys the toolkit fills and reads (any other key is kept as given).
CAUSATION_ID: Final = "causation_id"
CORRELATION_ID: Final = "correlation_id"
REQUEST_ID: Final = "request_id"
TRACEPARENT: Final = "traceparent"
METADATA_KEYS: Final = (CAUSATION_ID, CORRELATION_ID, REQUEST_ID, TRACEPARENT)

DEFAULT_LIMIT: Final = 1000


class ExpectedState(enum.Enum):
    """The expected versions that are not a number."""

    ANY = "any"  # no check
    NO_STREAM = "no stream"  # the stream must not exist (version 0)
    STREAM_EXISTS = "stream exists"  # the stream must have at least one event

    def __str__(self) -> str:
        return self.value


ANY: Final = ExpectedState.ANY
NO_STREAM: Final = ExpectedState.NO_STREAM
STREAM_EXISTS: Final = ExpectedState.STREAM_EXISTS

Expected = int | ExpectedState
"""What ``append`` expects the stream's current version to be: an exact version
(``0`` is the same as ``NO_STREAM``) or one of the states."""


class EventStoreError(Exception):
    """The event store failed or cannot be reached (driver errors are translated into
    this, with the driver's error as ``__cause__``)."""


class InvalidStreamName(EventStoreError, ValueError):
    """A stream or category name the store refuses."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the writer expected: someone else wrote first.

    ``actual`` is the stream's version when the append was refused (0: no stream)."""

    def __init__(self, stream: str, expected: Expected, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(f"stream {stream!r}: expected version {expected}, actual version {actual}")


class DuplicateEventId(EventStoreError):
    """An event id that is already stored, and not as a retry of this very append (the
    same ids at the same expected version)."""

    def __init__(self, stream: str, event_id: str, where: str) -> None:
        self.stream = stream
        self.event_id = event_id
        super().__init__(
            f"stream {stream!r}: event id {event_id} is already stored ({where}); "
            "expected new ids, or exactly the ids of an earlier append retried at the same "
            "expected version"
        )


def _new_id() -> str:
    return str(uuid4())


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append.  ``id`` makes a retried append idempotent: the same ids at
    the same expected version return the first append's result."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=_new_id)
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: ``version`` is its place in its stream (1-based),
    ``position`` its place in the whole store, ``recorded_at`` epoch seconds."""

    id: str
    stream: str
    version: int
    position: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: float

    @property
    def category(self) -> str:
        return category_of(self.stream)

    @property
    def stream_id(self) -> str:
        return stream_id_of(self.stream)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed: the versions of its first and last event and the global
    position of its last event."""

    first_version: int
    last_version: int
    last_position: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of ``version`` of its stream.  ``schema_version`` is the
    state's shape: a reader that does not know it ignores the snapshot and replays."""

    stream: str
    version: int
    schema_version: int
    state: dict[str, Any]
    recorded_at: float


@dataclass(frozen=True, slots=True)
class OutboxSpec:
    """Also write the appended events into the transactional outbox (same
    transaction), for the relay to publish: topic per ``topic_category`` (the
    relay's ``events.{aggregate}`` template; default: the stream's category), key =
    the stream's id part."""

    topic_category: str | None = None


class EventStore(Protocol):
    """Append-only streams with optimistic concurrency (see the module docstring)."""

    url: str

    async def init(self) -> None:
        """Create the tables if missing (idempotent)."""

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected: Expected = ANY,
        outbox: OutboxSpec | None = None,
    ) -> AppendResult:
        """Append ``events`` (at least one) atomically, or raise
        :class:`WrongExpectedVersion` and append nothing."""
        ...

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        upcasters: Upcasters | None = None,
    ) -> list[RecordedEvent]:
        """One stream's events from ``from_version`` (inclusive): forwards by default
        from 1, backwards from the last; ``[]`` for a stream that does not exist."""
        ...

    async def read_category(
        self,
        category: str,
        after_position: int = 0,
        limit: int = DEFAULT_LIMIT,
        member: int = 0,
        size: int = 1,
        upcasters: Upcasters | None = None,
    ) -> list[RecordedEvent]:
        """The category's events with a position above ``after_position``, in position
        order, only those committed below the gap-free watermark."""
        ...

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = DEFAULT_LIMIT,
        member: int = 0,
        size: int = 1,
        upcasters: Upcasters | None = None,
    ) -> list[RecordedEvent]:
        """Every event with a position above ``after_position`` (as ``read_category``)."""
        ...

    async def stream_version(self, stream: str) -> int:
        """The stream's last version, 0 when it does not exist."""
        ...

    async def save_snapshot(
        self, stream: str, version: int, schema_version: int, state: dict[str, Any]
    ) -> None:
        """Keep ``state`` as of ``version``; it replaces an older snapshot of the stream
        (an older version than the stored one is ignored)."""

    async def load_snapshot(self, stream: str) -> Snapshot | None: ...

    async def close(self) -> None: ...


# --- stream names (pure) ------------------------------------------------------------

MAX_STREAM_LENGTH: Final = 200
_CATEGORY = re.compile(r"[A-Za-z0-9_.:]+")
_ID = re.compile(r"[^\s\x00-\x1f\x7f]+")


def validate_category(category: str) -> str:
    """``category`` if it is a valid category name, else :class:`InvalidStreamName`."""
    if not _CATEGORY.fullmatch(category):
        raise InvalidStreamName(
            f"category {category!r} is not valid: expected letters, digits, '_', '.' or "
            "':' (no '-', it separates the category from the id)"
        )
    return category


def validate_stream(stream: str) -> str:
    """``stream`` if it is ``{category}-{id}`` with a valid category and a non-empty id
    without whitespace, at most ``MAX_STREAM_LENGTH`` characters."""
    if not isinstance(stream, str) or "-" not in stream:
        raise InvalidStreamName(
            f"stream name {stream!r} is not valid: expected '{{category}}-{{id}}', e.g. 'order-42'"
        )
    if len(stream) > MAX_STREAM_LENGTH:
        raise InvalidStreamName(
            f"stream name {stream[:40]!r}... is {len(stream)} characters long, "
            f"expected at most {MAX_STREAM_LENGTH}"
        )
    category, ident = stream.split("-", 1)
    validate_category(category)
    if not _ID.fullmatch(ident):
        raise InvalidStreamName(
            f"stream name {stream!r} is not valid: the id after {category + '-'!r} must "
            "be non-empty, without whitespace or control characters"
        )
    return stream


def stream_name(category: str, ident: str) -> str:
    """``stream_name("order", "42") == "order-42"`` (validated)."""
    return validate_stream(f"{category}-{ident}")


def category_of(stream: str) -> str:
    """``order-42`` -> ``order``."""
    return stream.split("-", 1)[0]


def stream_id_of(stream: str) -> str:
    """``order-42`` -> ``42``; ``order-1-2`` -> ``1-2``."""
    return stream.split("-", 1)[1] if "-" in stream else ""


def stream_hash(stream: str) -> int:
    """The stable hash partitioning uses: CRC-32 of the UTF-8 name (0 .. 2**32-1)."""
    return zlib.crc32(stream.encode("utf-8"))


def partition_of(stream: str, size: int) -> int:
    """The consumer-group member (0 .. size-1) that reads ``stream``."""
    return stream_hash(stream) % size


def validate_group(member: int, size: int) -> None:
    """Refuse a member/size pair that would read nothing or everything twice."""
    if size < 1 or not 0 <= member < size:
        raise ValueError(f"consumer group member={member} size={size}: expected 0 <= member < size")
