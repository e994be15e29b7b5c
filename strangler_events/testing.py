"""The given-when-then test kit: behaviour as events, usable from any service's pytest.

Aggregates (:class:`AggregateFixture`)::

    account = AggregateFixture(Account, id="acc-1")
    account.given(AccountOpened("ada")).when(lambda a: a.deposit(50)).then(MoneyDeposited(50))
    account.given().when(lambda a: a.deposit(50)).then_raises(AccountNotOpened, match="acc-1")
    account.given(AccountOpened("ada")).when(lambda a: a.close_if_empty()).then_nothing()

Read models as a fold of events (:class:`ReadModelFixture`)::

    balances = ReadModelFixture(apply=apply_balance, initial=dict)
    balances.given(AccountOpened("ada"), MoneyDeposited(50)).then_state({"ada": 50})

Projections on a database (:class:`ProjectionFixture`, async)::

    await ProjectionFixture(orders_projection(db)).given(created).then_query(query, rows)

Sagas (:class:`SagaFixture`, from :mod:`strangler_events.saga.fixture`)::

    checkout = SagaFixture(CHECKOUT)
    checkout.given(placed, reserved).when(declined).then_commands("ReleaseInventory")
    checkout.given(placed).when_time_passes(30).then_commands("ReserveInventory")

Every failure is an :class:`AssertionError` that says what differed (rendered by
:mod:`strangler_events.difference`): an Expected | Actual table of the events, rows
that differ marked ``>>``, each differing field path with both values, and the
missing or extra events.  Generated fields (ids, timestamps, positions) are ignored
unless ``strict=True`` or ``compare=[...]`` asks for them.  :func:`assert_events`
compares any two event lists the same way (store reads, envelopes, domain events).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from strangler_events.aggregate import Aggregate, DomainEvent
from strangler_events.difference import event_mismatch, summary, value_mismatch
from strangler_events.saga.fixture import SagaFixture, SagaGiven, SagaOutcome

if TYPE_CHECKING:
    from strangler_events.database.port import Tx
    from strangler_events.envelope import Event
    from strangler_events.projection import Projection

__all__ = [
    "AggregateFixture",
    "Given",
    "Outcome",
    "ProjectionFixture",
    "ReadModelFixture",
    "SagaFixture",
    "SagaGiven",
    "SagaOutcome",
    "assert_events",
]

A = TypeVar("A", bound=Aggregate)
S = TypeVar("S")
T = TypeVar("T")
X = TypeVar("X", bound=BaseException)


def assert_events(
    actual: Sequence[object],
    expected: Sequence[object],
    *,
    strict: bool = False,
    compare: Sequence[str] | None = None,
) -> None:
    """Raise an :class:`AssertionError` with the Expected | Actual report unless the
    events match (see :mod:`strangler_events.difference` for what is compared)."""
    report = event_mismatch(expected, actual, strict=strict, compare=compare)
    if report is not None:
        raise AssertionError(report)


class AggregateFixture(Generic[A]):
    """Given past events, when a command runs, then these events (or this error).

    account = AggregateFixture(Account, id="acc-1")
    account.given(AccountOpened("ada")).when(lambda a: a.deposit(50)).then(MoneyDeposited(50))
    """

    def __init__(self, aggregate: type[A], id: str = "test-1") -> None:
        self.aggregate = aggregate
        self.id = id

    def given(self, *events: DomainEvent) -> Given[A]:
        """The aggregate rebuilt from ``events`` (stream versions 1, 2, ...)."""
        aggregate = self.aggregate(self.id)
        for version, event in enumerate(events, 1):
            try:
                aggregate.replay(version, event)
            except Exception as exc:
                raise AssertionError(
                    f"given event #{version} {summary(event)} could not be applied: {exc}"
                ) from exc
        return Given(aggregate)


class Given(Generic[A]):
    """An aggregate with its history applied; :meth:`when` runs a command on it."""

    def __init__(self, aggregate: A) -> None:
        self.aggregate = aggregate

    def when(self, command: Callable[[A], object]) -> Outcome[A]:
        """Run ``command(aggregate)`` (it calls command methods); its error is kept for
        :meth:`Outcome.then_raises`, its recorded events for :meth:`Outcome.then`."""
        aggregate = copy.deepcopy(self.aggregate)  # so one Given serves several whens
        try:
            returned = command(aggregate)
        except Exception as exc:
            return Outcome(aggregate, None, exc)
        return Outcome(aggregate, returned, None)


class Outcome(Generic[A]):
    """What a command did: the events it recorded, or the exception it raised."""

    def __init__(self, aggregate: A, returned: object, error: Exception | None) -> None:
        self.aggregate = aggregate
        self.events = [p.event for p in aggregate.pending_events]
        self.returned = returned
        self.error = error

    def then(
        self, *expected: DomainEvent, strict: bool = False, compare: Sequence[str] | None = None
    ) -> A:
        """The command recorded exactly ``expected``; returns the aggregate."""
        if not expected:
            raise TypeError("then() needs at least one event; use then_nothing() for none")
        report = event_mismatch(expected, self.events, strict=strict, compare=compare)
        if self.error is not None:
            table = f"\n{report}" if report is not None else ""
            raise AssertionError(f"The command raised {_error(self.error)}{table}") from self.error
        if report is not None:
            raise AssertionError(report + self._hint())
        return self.aggregate

    def then_nothing(self) -> A:
        """The command neither raised nor recorded an event; returns the aggregate."""
        if self.error is not None:
            raise AssertionError(
                f"Expected no events, but the command raised {_error(self.error)}"
            ) from self.error
        title = "Expected no events, but the command recorded some"
        report = event_mismatch([], self.events, title=title)
        if report is not None:
            raise AssertionError(report)
        return self.aggregate

    def then_raises(self, error: type[X], match: str | None = None) -> X:
        """The command raised ``error`` (a subclass counts) whose message matches the
        regular expression ``match`` (``re.search``, as in ``pytest.raises``)."""
        if self.error is None:
            recorded = ", ".join(summary(e) for e in self.events) or "nothing"
            raise AssertionError(
                f"Expected {error.__name__} to be raised, but the command returned normally, "
                f"recording: {recorded}"
            )
        if not isinstance(self.error, error):
            raise AssertionError(
                f"Expected {error.__name__} to be raised, but the command raised "
                f"{_error(self.error)}"
            ) from self.error
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(
                f"{type(self.error).__name__} was raised, but its message {str(self.error)!r} "
                f"does not match {match!r}"
            ) from self.error
        return self.error

    def _hint(self) -> str:
        returned = self.returned
        if self.events or not isinstance(returned, list | tuple) or not returned:
            return ""
        if not all(isinstance(e, DomainEvent) for e in returned):
            return ""
        return (
            f"\n(the command returned {len(returned)} event(s) but recorded none: "
            "is its method decorated with @command?)"
        )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ReadModelFixture(Generic[S]):
    """A read model that is a fold of events: ``apply(state, event)`` returns the new
    state (or None after changing ``state`` in place); ``initial()`` the empty one.

        balances = ReadModelFixture(apply=apply_balance, initial=dict)
        balances.given(AccountOpened("ada"), MoneyDeposited(50)).then_state({"ada": 50})
    """

    def __init__(self, apply: Callable[[S, Any], S | None], initial: Callable[[], S]) -> None:
        self.apply = apply
        self.initial = initial

    def given(self, *events: object) -> ReadModelGiven[S]:
        state = self.initial()
        for number, event in enumerate(events, 1):
            try:
                result = self.apply(state, event)
            except Exception as exc:
                raise AssertionError(
                    f"given event #{number} {_describe(event)} could not be applied: {_error(exc)}"
                ) from exc
            state = state if result is None else result
        return ReadModelGiven(state)


class ReadModelGiven(Generic[S]):
    def __init__(self, state: S) -> None:
        self.state = state

    def then_state(self, expected: Any) -> S:
        """The state equals ``expected`` (dataclasses compare as their fields)."""
        report = value_mismatch(expected, self.state)
        if report is not None:
            raise AssertionError(report)
        return self.state

    def then_query(self, query: Callable[[S], T], expected: Any) -> T:
        """``query(state)`` equals ``expected``."""
        result = query(self.state)
        report = value_mismatch(expected, result, "The query result does not match")
        if report is not None:
            raise AssertionError(report)
        return result


class ProjectionFixture:
    """A :class:`~strangler_events.projection.Projection` fed envelope events directly
    (no broker): each through its handler in its own transaction, upcast first.

        fixture = ProjectionFixture(orders_projection(database))
        await fixture.given(created, updated).then_query(read_rows, [(42, "shipped")])
    """

    def __init__(self, projection: Projection) -> None:
        self.projection = projection

    def given(self, *events: Event) -> ProjectionGiven:
        return ProjectionGiven(self.projection, events)


class ProjectionGiven:
    def __init__(self, projection: Projection, events: Sequence[Event]) -> None:
        self.projection = projection
        self.events = events

    async def then_query(self, query: Callable[[Tx], Awaitable[T]], expected: Any) -> T:
        """Apply the events, then ``await query(tx)`` equals ``expected``."""
        await self.projection.init()
        for number, raw in enumerate(self.events, 1):
            try:
                event = self.projection.upcasters.upcast(raw)
                apply = self.projection.handlers.get(event.type)
                if apply is None:
                    continue  # as the consumer does: a type without a handler is skipped
                async with self.projection.database.transaction() as tx:
                    await apply(event, tx)
            except Exception as exc:
                raise AssertionError(
                    f"given event #{number} {raw.type} {raw.id} could not be applied: {_error(exc)}"
                ) from exc
        async with self.projection.database.transaction() as tx:
            result = await query(tx)
        report = value_mismatch(expected, result, "The query result does not match")
        if report is not None:
            raise AssertionError(report)
        return result


def _describe(event: object) -> str:
    try:
        return summary(event)
    except TypeError:
        return repr(event)
