"""Loading and saving event-sourced aggregates (:mod:`strangler_events.aggregate`) in an
event store (:mod:`strangler_events.eventstore.port`), and running a command with
bounded retries on a concurrent write.

    accounts = Repository(store, Account, "account", snapshot_every=50)
    account = await accounts.load("acc-1")        # snapshot + the events after it
    account.deposit(100)
    await accounts.save(account)                  # expects the version it loaded
    done = await handle(accounts, "acc-1", lambda a: a.withdraw(30))  # load, decide, save

A snapshot is a shortcut, never the truth: one whose schema version is not the
aggregate class's current ``snapshot_schema_version`` (or whose state does not fit the
class) is ignored and the aggregate is rebuilt from its events.  Snapshots are written
after a save whose events cross a multiple of ``snapshot_every``; failing to write
one does not fail the save (the events are stored; the next load just replays more).

:func:`handle` retries only :class:`WrongExpectedVersion`, by reloading and deciding
again, so the command sees what the other writer did; after ``retries`` retries it
raises :class:`CommandConflict` naming the stream and the attempts.  Domain errors
raised by the command are not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from strangler_events.aggregate import (
    Aggregate,
    DomainEvent,
    EventDataError,
    SnapshotError,
    UnknownEvent,
)
from strangler_events.eventstore.port import (
    AppendResult,
    EventStore,
    EventStoreError,
    Expected,
    NewEvent,
    OutboxSpec,
    WrongExpectedVersion,
    stream_name,
    validate_category,
)
from strangler_events.upcast import Upcasters

__all__ = ["CommandConflict", "Handled", "Repository", "handle"]

A = TypeVar("A", bound=Aggregate)
PAGE: Final = 1000

log = logging.getLogger("strangler.events.repository")


class Repository(Generic[A]):
    """An aggregate class's streams (``{category}-{id}``) in one event store.

    accounts = Repository(store, Account, "account", snapshot_every=50)
    """

    def __init__(
        self,
        store: EventStore,
        aggregate: type[A],
        category: str,
        *,
        snapshot_every: int | None = None,
        upcasters: Upcasters | None = None,
        outbox: OutboxSpec | None = None,
    ) -> None:
        if snapshot_every is not None and (isinstance(snapshot_every, bool) or snapshot_every < 1):
            raise ValueError(
                f"snapshot_every {snapshot_every!r} is not valid: expected an integer >= 1 "
                "or None (no snapshots)"
            )
        self.store = store
        self.aggregate = aggregate
        self.category = validate_category(category)
        self.snapshot_every = snapshot_every
        self.upcasters = upcasters
        self.outbox = outbox

    def stream(self, id: str) -> str:
        return stream_name(self.category, id)

    async def load(self, id: str) -> A:
        """The aggregate as of its stream's last event (version 0 when there is none)."""
        stream = self.stream(id)
        aggregate = await self._from_snapshot(stream, id)
        while True:
            page = await self.store.read_stream(
                stream, from_version=aggregate.version + 1, limit=PAGE, upcasters=self.upcasters
            )
            for recorded in page:
                try:
                    event = self.aggregate.decode(
                        recorded.type, recorded.schema_version, recorded.data
                    )
                except (UnknownEvent, EventDataError) as exc:
                    raise type(exc)(f"{stream} version {recorded.version}: {exc}") from exc
                aggregate.replay(recorded.version, event)
            if len(page) < PAGE:
                return aggregate

    async def _from_snapshot(self, stream: str, id: str) -> A:
        if self.snapshot_every is None:
            return self.aggregate(id)
        snapshot = await self.store.load_snapshot(stream)
        if snapshot is None:
            return self.aggregate(id)
        current = self.aggregate.snapshot_schema_version
        if snapshot.schema_version != current:
            log.info(
                "%s: ignoring the snapshot at version %d: schema version %d, expected %d",
                stream,
                snapshot.version,
                snapshot.schema_version,
                current,
            )
            return self.aggregate(id)
        try:
            return self.aggregate.from_snapshot(id, snapshot.state, snapshot.version)
        except SnapshotError as exc:
            log.warning("%s: ignoring the snapshot: %s", stream, exc)
            return self.aggregate(id)

    async def save(
        self,
        aggregate: A,
        expected_version: Expected | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult | None:
        """Append the pending events, expecting the stream at ``expected_version``
        (default: the version it was loaded at, or last saved); None when nothing was
        pending.  Raises :class:`WrongExpectedVersion` when someone else wrote first."""
        pending = aggregate.pending_events
        if not pending:
            return None
        stream = self.stream(aggregate.id)
        expected = aggregate.committed_version if expected_version is None else expected_version
        events = [
            NewEvent(
                type=p.event.event_type,
                data=p.event.to_data(),
                metadata=dict(metadata or {}),
                id=p.id,
                schema_version=p.event.schema_version,
            )
            for p in pending
        ]
        result = await self.store.append(stream, events, expected=expected, outbox=self.outbox)
        committed = aggregate.committed_version
        aggregate.mark_saved()
        if result.last_version != aggregate.version:
            # Only with ``expected_version=ANY`` (or a wrong explicit number): others
            # wrote in between, so this object's state is not the stream's; no snapshot.
            log.warning(
                "%s: saved at version %d, the aggregate assumed %d; reload it before reuse",
                stream,
                result.last_version,
                aggregate.version,
            )
        elif self._snapshot_due(committed, aggregate.version):
            await self._snapshot(stream, aggregate)
        return result

    def _snapshot_due(self, before: int, after: int) -> bool:
        every = self.snapshot_every
        return every is not None and after // every > before // every

    async def _snapshot(self, stream: str, aggregate: A) -> None:
        try:
            await self.store.save_snapshot(
                stream,
                aggregate.version,
                self.aggregate.snapshot_schema_version,
                aggregate.snapshot(),
            )
        except (EventStoreError, SnapshotError, ValueError, TypeError) as exc:
            # The events are stored; a missing snapshot only makes the next load slower.
            log.warning("%s: snapshot at %d not written: %s", stream, aggregate.version, exc)


@dataclass(frozen=True, slots=True)
class Handled(Generic[A]):
    """A command's result: the saved aggregate, the events it recorded (none: the
    command decided nothing needed to happen) and how many attempts it took."""

    aggregate: A
    events: tuple[DomainEvent, ...]
    attempts: int


class CommandConflict(Exception):
    """A command that kept losing to concurrent writers and was given up."""

    def __init__(self, stream: str, attempts: int, last: WrongExpectedVersion) -> None:
        self.stream = stream
        self.attempts = attempts
        self.last = last
        super().__init__(
            f"command on stream {stream!r} gave up after {attempts} attempts: each found "
            f"the stream changed by another writer (last: expected version {last.expected}, "
            f"actual version {last.actual})"
        )


async def handle(
    repository: Repository[A],
    id: str,
    command: Callable[[A], object],
    *,
    retries: int = 3,
    metadata: Mapping[str, Any] | None = None,
) -> Handled[A]:
    """Load ``id``, run ``command(aggregate)`` (it calls command methods), save what
    it recorded; on :class:`WrongExpectedVersion` do it all again, at most ``retries``
    more times, then raise :class:`CommandConflict`."""
    if isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries {retries!r} is not valid: expected an integer >= 0")
    last: WrongExpectedVersion | None = None
    for attempt in range(1, retries + 2):
        aggregate = await repository.load(id)
        command(aggregate)
        events = tuple(p.event for p in aggregate.pending_events)
        try:
            await repository.save(aggregate, metadata=metadata)
        except WrongExpectedVersion as exc:
            last = exc
            continue
        return Handled(aggregate, events, attempt)
    assert last is not None  # the loop runs at least once
    raise CommandConflict(repository.stream(id), retries + 1, last) from last
