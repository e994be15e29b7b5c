"""Event-sourced aggregates (pure): decisions and state changes in one small class, no I/O.

An aggregate's state is nothing but its events applied in order.  A *command method*
(decorated with :func:`command`) checks the request against the current state and
returns the new events, or raises a domain error; the decorator applies them and keeps
them as pending.  An *apply method* (decorated with :func:`applies`) changes state for
one event type and never fails: everything that can be refused is refused in the
command.  The repository (:mod:`strangler_events.repository`) does the I/O: it replays
the stored events through :meth:`Aggregate.replay` and appends the pending ones.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Incremented(DomainEvent):
    ...     by: int
    >>> class Counter(Aggregate):
    ...     def __init__(self, id: str) -> None:
    ...         super().__init__(id)
    ...         self.total = 0
    ...     @command
    ...     def increment(self, by: int) -> list[DomainEvent]:
    ...         if by < 1:
    ...             raise ValueError(f"by must be at least 1, got {by}")
    ...         return [Incremented(by)]
    ...     @applies(Incremented)
    ...     def _incremented(self, event: Incremented) -> None:
    ...         self.total += event.by
    >>> counter = Counter("c-1")
    >>> counter.increment(2)
    [Incremented(by=2)]
    >>> counter.total, counter.version, counter.committed_version
    (2, 1, 0)

``version`` is the stream version the state reflects (pending events included);
``committed_version`` the one the stream had when the aggregate was loaded or last
saved, which is what a save expects by default.  A command returns only its own
events; one command method calling another would record the inner one's events twice.

Snapshots: :meth:`Aggregate.snapshot` gives the public attributes (a deep copy) and
:meth:`Aggregate.from_snapshot` restores them; override both when the state is not
plain JSON.  Change ``snapshot_schema_version`` whenever the state's shape changes, so
that older snapshots are ignored and the state is rebuilt from the events.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar, cast
from uuid import uuid4

__all__ = [
    "Aggregate",
    "DomainEvent",
    "EventDataError",
    "HistoryError",
    "PendingEvent",
    "SnapshotError",
    "UnknownEvent",
    "applies",
    "command",
]

P = ParamSpec("P")
A = TypeVar("A", bound="Aggregate")
E = TypeVar("E", bound="DomainEvent")
Apply = Callable[[Any, Any], None]

_APPLIES = "__applies_event__"


class DomainEvent:
    """Base of an aggregate's events; subclass it as a ``@dataclass(frozen=True)``.

    The stored type is the class name (set ``event_type`` to keep an old name after a
    rename) and the stored data is the dataclass's fields (JSON values only);
    ``schema_version`` is the data's shape, which upcasters bring older events up to.
    """

    event_type: ClassVar[str] = "DomainEvent"
    schema_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__

    def to_data(self) -> dict[str, Any]:
        """The event's fields, as stored."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a dataclass to be stored")
        return dataclasses.asdict(self)

    @classmethod
    def from_data(cls: type[E], data: Mapping[str, Any]) -> E:
        """The event back from its stored fields; :class:`EventDataError` names what does
        not fit (a missing or unexpected field)."""
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be stored")
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        required = {
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing, unexpected = sorted(required - set(data)), sorted(set(data) - names)
        if missing or unexpected:
            raise EventDataError(
                f"{cls.event_type} v{cls.schema_version} data {dict(data)!r} does not fit: "
                f"missing {missing}, unexpected {unexpected} "
                f"(expected fields: {sorted(names)})"
            )
        return cast(Callable[..., E], cls)(**data)


class UnknownEvent(LookupError):
    """An event type the aggregate has no apply method for."""


class EventDataError(ValueError):
    """Stored data that does not fit its event class."""


class HistoryError(ValueError):
    """Stored events out of sequence for the aggregate (a gap or a repeat)."""


class SnapshotError(ValueError):
    """A snapshot whose state does not fit the aggregate."""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A recorded but not yet saved event: ``id`` stays the same across save attempts,
    so a retried append of the same aggregate is idempotent."""

    id: str
    version: int
    event: DomainEvent


def applies(event_class: type[E]) -> Callable[[Callable[[A, E], None]], Callable[[A, E], None]]:
    """Mark a method as the one that applies ``event_class`` to the aggregate's state."""

    def mark(method: Callable[[A, E], None]) -> Callable[[A, E], None]:
        setattr(method, _APPLIES, event_class)
        return method

    return mark


def command(
    method: Callable[Concatenate[A, P], Sequence[DomainEvent]],
) -> Callable[Concatenate[A, P], list[DomainEvent]]:
    """Mark a command method: the events it returns are applied to the state at once (a
    later command sees them) and kept as pending until saved."""

    def run(self: A, /, *args: P.args, **kwargs: P.kwargs) -> list[DomainEvent]:
        events = list(method(self, *args, **kwargs))
        for event in events:
            self._record(event)
        return events

    run.__name__ = method.__name__
    run.__qualname__ = method.__qualname__
    run.__doc__ = method.__doc__
    return run


class Aggregate:
    """Base of an event-sourced aggregate; see the module docstring for an example.

    A subclass's ``__init__`` takes the id only and sets the initial state."""

    snapshot_schema_version: ClassVar[int] = 1
    _appliers: ClassVar[dict[str, tuple[type[DomainEvent], Apply]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers = dict(cls._appliers)  # a subclass inherits its bases' apply methods
        mine: dict[str, str] = {}
        for name, value in cls.__dict__.items():
            event_class = getattr(value, _APPLIES, None)
            if event_class is None:
                continue
            kind = event_class.event_type
            if kind in mine:
                raise TypeError(
                    f"{cls.__name__}: {kind} is applied by both {mine[kind]}() and {name}()"
                )
            mine[kind] = name
            appliers[kind] = (event_class, value)
        cls._appliers = appliers

    def __init__(self, id: str) -> None:
        self._id = id
        self._version = 0
        self._pending: list[PendingEvent] = []

    @property
    def id(self) -> str:
        return self._id

    @property
    def version(self) -> int:
        """The stream version the state reflects, pending events included (0: new)."""
        return self._version

    @property
    def committed_version(self) -> int:
        """The stream version as of the load or the last save (pending events excluded)."""
        return self._version - len(self._pending)

    @property
    def pending_events(self) -> tuple[PendingEvent, ...]:
        return tuple(self._pending)

    def mark_saved(self) -> None:
        """The pending events are stored now (the repository calls this)."""
        self._pending.clear()

    @classmethod
    def event_types(cls) -> tuple[str, ...]:
        return tuple(sorted(cls._appliers))

    @classmethod
    def event_class(cls, event_type: str) -> type[DomainEvent]:
        """The event class stored as ``event_type``, or :class:`UnknownEvent`."""
        found = cls._appliers.get(event_type)
        if found is None:
            raise UnknownEvent(
                f"{cls.__name__} has no apply method for event type {event_type!r} "
                f"(it applies: {', '.join(cls.event_types()) or 'nothing'})"
            )
        return found[0]

    @classmethod
    def decode(cls, event_type: str, schema_version: int, data: Mapping[str, Any]) -> DomainEvent:
        """A stored event as its domain event; the data must be at the class's schema
        version already (upcasters run when the store reads)."""
        event_class = cls.event_class(event_type)
        if schema_version != event_class.schema_version:
            raise EventDataError(
                f"{event_type} has schema version {schema_version}, {cls.__name__} expects "
                f"{event_class.schema_version} (register an upcaster for the older versions)"
            )
        return event_class.from_data(data)

    def replay(self, version: int, event: DomainEvent) -> None:
        """Apply a stored event, the stream's ``version``-th, to rebuild the state."""
        if self._pending:
            raise HistoryError(f"{self._describe()}: cannot replay with unsaved events pending")
        if version != self._version + 1:
            raise HistoryError(
                f"{self._describe()}: stored event {event.event_type} has version {version}, "
                f"expected {self._version + 1}"
            )
        self._apply(event)
        self._version = version

    def _record(self, event: DomainEvent) -> None:
        if not isinstance(event, DomainEvent):
            raise TypeError(
                f"{self._describe()}: a command returned {event!r}, expected DomainEvent values"
            )
        self._apply(event)
        self._version += 1
        self._pending.append(PendingEvent(str(uuid4()), self._version, event))

    def _apply(self, event: DomainEvent) -> None:
        found = self._appliers.get(event.event_type)
        if found is None:
            raise UnknownEvent(
                f"{self._describe()} has no apply method for event type {event.event_type!r} "
                f"(it applies: {', '.join(self.event_types()) or 'nothing'})"
            )
        event_class, apply = found
        if not isinstance(event, event_class):
            raise UnknownEvent(
                f"{self._describe()}: {event!r} is not the {event.event_type} it applies "
                f"({event_class.__module__}.{event_class.__qualname__}); two event classes "
                "share the type name"
            )
        apply(self, event)

    def _describe(self) -> str:
        return f"{type(self).__name__} {self._id!r}"

    # --- snapshots ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The state to keep in a snapshot: the public attributes, deep-copied."""
        if self._pending:
            raise SnapshotError(f"{self._describe()}: cannot snapshot with unsaved events")
        return copy.deepcopy(dict(_public(self)))

    @classmethod
    def from_snapshot(cls: type[A], id: str, state: Mapping[str, Any], version: int) -> A:
        """The aggregate as of ``version``, from :meth:`snapshot`'s state; a state whose
        attributes differ from a new aggregate's raises :class:`SnapshotError`."""
        aggregate = cls(id)
        known = set(dict(_public(aggregate)))
        if set(state) != known:
            raise SnapshotError(
                f"{cls.__name__} snapshot of {id!r} at version {version} does not fit: "
                f"missing {sorted(known - set(state))}, unexpected {sorted(set(state) - known)}"
            )
        for name, value in copy.deepcopy(dict(state)).items():
            setattr(aggregate, name, value)
        aggregate._version = version
        return aggregate

    def __repr__(self) -> str:
        state = ", ".join(f"{k}={v!r}" for k, v in _public(self))
        return f"{type(self).__name__}(id={self._id!r}, version={self._version}, {state})"


def _public(aggregate: Aggregate) -> Iterator[tuple[str, Any]]:
    return ((k, v) for k, v in vars(aggregate).items() if not k.startswith("_"))
