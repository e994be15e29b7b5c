"""The given-when-then kit: what passes, and the exact text of each failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strangler_events.aggregate import Aggregate, DomainEvent, applies, command
from strangler_events.database import Database, Tx, open_database
from strangler_events.envelope import Event
from strangler_events.eventstore.port import NewEvent, RecordedEvent
from strangler_events.projection import Projection
from strangler_events.testing import (
    AggregateFixture,
    ProjectionFixture,
    ReadModelFixture,
    assert_events,
)
from strangler_events.upcast import Upcasters


@dataclass(frozen=True)
class Opened(DomainEvent):
    owner: str


@dataclass(frozen=True)
class Deposited(DomainEvent):
    amount: int


class Closed(Exception):
    pass


class Till(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.total = 0

    @command
    def open(self, owner: str) -> list[DomainEvent]:
        return [Opened(owner)]

    @command
    def deposit(self, *amounts: int) -> list[DomainEvent]:
        if not self.owner:
            raise Closed(f"till {self.id!r} is not open")
        if any(a <= 0 for a in amounts):
            raise ValueError(f"amounts must be positive, got {list(amounts)}")
        return [Deposited(a) for a in amounts]

    def deposit_undecorated(self, amount: int) -> list[DomainEvent]:
        return [Deposited(amount)]

    @applies(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.total += event.amount


till = AggregateFixture(Till, id="t-1")


def failure(check: Any) -> AssertionError:
    with pytest.raises(AssertionError) as caught:
        check()
    return caught.value


# --- aggregates: passing ------------------------------------------------------------


def test_then_returns_the_aggregate_after_the_command() -> None:
    given = till.given(Opened("ada"))
    after = given.when(lambda t: t.deposit(5, 7)).then(Deposited(5), Deposited(7))
    assert (after.total, after.version, after.committed_version) == (12, 3, 1)
    again = given.when(lambda t: t.deposit(1)).then(Deposited(1))  # each when starts afresh
    assert (again.total, given.aggregate.total) == (1, 0)
    assert till.given(Opened("ada")).when(lambda t: None).then_nothing().version == 1


def test_then_raises_returns_the_error_and_accepts_subclasses() -> None:
    error = till.given().when(lambda t: t.deposit(5)).then_raises(Closed, match=r"'t-1' is not")
    assert str(error) == "till 't-1' is not open"
    till.given().when(lambda t: t.deposit(5)).then_raises(Exception)


def test_compare_and_strict_reach_the_comparison() -> None:
    till.given(Opened("ada")).when(lambda t: t.deposit(5)).then(Deposited(6), compare=["type"])
    till.given(Opened("ada")).when(lambda t: t.deposit(5)).then(Deposited(5), strict=True)


# --- aggregates: failure texts ------------------------------------------------------


def test_then_with_a_differing_and_a_missing_event() -> None:
    error = failure(
        lambda: (
            till.given(Opened("ada"))
            .when(lambda t: t.deposit(40))
            .then(Deposited(50), Deposited(10))
        )
    )
    assert str(error) == (
        "The events do not match the expected events: 1 differs, 1 missing\n"
        "(generated fields ignored: id, occurred_at, position, recorded_at, timestamp)\n"
        "\n"
        "    #  Expected              |  Actual\n"
        ">>  1  Deposited(amount=50)  |  Deposited(amount=40)\n"
        ">>  2  Deposited(amount=10)  |  (none)\n"
        "\n"
        "  #1 data.amount: expected 50, actual 40\n"
        "  #2 missing: Deposited(amount=10)"
    )


def test_then_with_an_extra_event_of_another_type() -> None:
    error = failure(
        lambda: till.given().when(lambda t: (t.open("ada"), t.deposit(1))).then(Deposited(1))
    )
    assert str(error) == (
        "The events do not match the expected events: 1 differs, 1 extra\n"
        "(generated fields ignored: id, occurred_at, position, recorded_at, timestamp)\n"
        "\n"
        "    #  Expected             |  Actual\n"
        ">>  1  Deposited(amount=1)  |  Opened(owner='ada')\n"
        ">>  2  (none)               |  Deposited(amount=1)\n"
        "\n"
        "  #1 type: expected 'Deposited', actual 'Opened'\n"
        "  #1 actual: Opened(owner='ada')\n"
        "  #2 extra: Deposited(amount=1)"
    )


def test_then_when_the_command_raised() -> None:
    error = failure(lambda: till.given().when(lambda t: t.deposit(5)).then(Deposited(5)))
    assert str(error) == (
        "The command raised Closed: till 't-1' is not open\n"
        "The events do not match the expected events: 1 missing\n"
        "\n"
        "    #  Expected             |  Actual\n"
        ">>  1  Deposited(amount=5)  |  (none)\n"
        "\n"
        "  #1 missing: Deposited(amount=5)"
    )
    assert isinstance(error.__cause__, Closed)


def test_then_when_the_command_method_is_not_decorated() -> None:
    error = failure(
        lambda: till.given(Opened("a")).when(lambda t: t.deposit_undecorated(5)).then(Deposited(5))
    )
    assert str(error).endswith(
        "  #1 missing: Deposited(amount=5)\n"
        "(the command returned 1 event(s) but recorded none: "
        "is its method decorated with @command?)"
    )


def test_then_needs_an_event() -> None:
    with pytest.raises(TypeError, match=r"use then_nothing\(\) for none"):
        till.given().when(lambda t: None).then()


def test_then_nothing_when_events_were_recorded() -> None:
    given = till.given(Opened("ada"))
    error = failure(lambda: given.when(lambda t: t.deposit(5, 6)).then_nothing())
    assert str(error) == (
        "Expected no events, but the command recorded some: 2 extra\n"
        "\n"
        "    #  Expected  |  Actual\n"
        ">>  1  (none)    |  Deposited(amount=5)\n"
        ">>  2  (none)    |  Deposited(amount=6)\n"
        "\n"
        "  #1 extra: Deposited(amount=5)\n"
        "  #2 extra: Deposited(amount=6)"
    )


def test_then_nothing_when_the_command_raised() -> None:
    error = failure(lambda: till.given().when(lambda t: t.deposit(5)).then_nothing())
    assert str(error) == "Expected no events, but the command raised Closed: till 't-1' is not open"


def test_then_raises_when_nothing_was_raised() -> None:
    error = failure(
        lambda: till.given(Opened("ada")).when(lambda t: t.deposit(5)).then_raises(Closed)
    )
    assert str(error) == (
        "Expected Closed to be raised, but the command returned normally, "
        "recording: Deposited(amount=5)"
    )
    error = failure(lambda: till.given().when(lambda t: None).then_raises(Closed))
    assert str(error) == (
        "Expected Closed to be raised, but the command returned normally, recording: nothing"
    )


def test_then_raises_with_another_error() -> None:
    error = failure(
        lambda: till.given(Opened("ada")).when(lambda t: t.deposit(-1)).then_raises(Closed)
    )
    assert str(error) == (
        "Expected Closed to be raised, but the command raised "
        "ValueError: amounts must be positive, got [-1]"
    )
    assert isinstance(error.__cause__, ValueError)


def test_then_raises_with_another_message() -> None:
    error = failure(
        lambda: till.given().when(lambda t: t.deposit(5)).then_raises(Closed, match="is closed")
    )
    assert str(error) == (
        "Closed was raised, but its message \"till 't-1' is not open\" does not match 'is closed'"
    )


def test_a_given_event_that_cannot_be_applied() -> None:
    @dataclass(frozen=True)
    class Audited(DomainEvent):
        pass

    error = failure(lambda: till.given(Opened("ada"), Audited()))
    assert str(error) == (
        "given event #2 Audited() could not be applied: Till 't-1' has no apply method for "
        "event type 'Audited' (it applies: Deposited, Opened)"
    )


# --- any events ---------------------------------------------------------------------


def test_assert_events_compares_store_events_with_new_ones() -> None:
    stored = RecordedEvent(
        "id-9", "till-t-1", 1, 44, "Deposited", 1, {"amount": 5}, {"request_id": "r"}, 1.0
    )
    assert_events([stored], [NewEvent("Deposited", {"amount": 5}, {"request_id": "r"})])
    assert_events([stored], [{"type": "Deposited", "version": 1, "position": 1}])
    error = failure(lambda: assert_events([stored], [{"position": 1}], compare=["position"]))
    assert str(error).splitlines()[-1] == "  #1 position: expected 1, actual 44"
    error = failure(lambda: assert_events([stored], [{"position": 1}], strict=True))
    assert str(error).splitlines()[-2:] == [
        "  #1 metadata: expected <missing>, actual {'request_id': 'r'}",
        "  #1 recorded_at: expected <missing>, actual 1.0",
    ]


# --- read models --------------------------------------------------------------------


def apply_balance(state: dict[str, int], event: RecordedEvent) -> None:
    if event.type == "Deposited":
        state[event.stream] = state.get(event.stream, 0) + event.data["amount"]


def deposit(stream: str, amount: int) -> RecordedEvent:
    return RecordedEvent("i", stream, 1, 1, "Deposited", 1, {"amount": amount}, {}, 0.0)


balances = ReadModelFixture(apply=apply_balance, initial=dict)


def test_a_read_model_state_and_query() -> None:
    given = balances.given(deposit("till-a", 5), deposit("till-b", 1), deposit("till-a", 2))
    assert given.then_state({"till-a": 7, "till-b": 1}) == {"till-a": 7, "till-b": 1}
    assert given.then_query(lambda s: sorted(s), ["till-a", "till-b"]) == ["till-a", "till-b"]
    counter = ReadModelFixture(apply=lambda n, e: n + 1, initial=lambda: 0)
    counter.given("a", "b").then_state(2)


def test_a_read_model_that_differs() -> None:
    given = balances.given(deposit("till-a", 5), deposit("till-b", 1))
    error = failure(lambda: given.then_state({"till-a": 7, "till-c": 0}))
    assert str(error) == (
        "The state does not match the expected state:\n"
        "  ['till-a']: expected 7, actual 5\n"
        "  ['till-c']: expected 0, actual <missing>\n"
        "  ['till-b']: expected <missing>, actual 1"
    )
    error = failure(lambda: given.then_query(len, 3))
    assert str(error) == "The query result does not match:\n  expected 3, actual 2"


def test_a_read_model_event_that_cannot_be_applied() -> None:
    error = failure(lambda: balances.given(deposit("till-a", 5), "junk"))
    assert str(error) == (
        "given event #2 'junk' could not be applied: "
        "AttributeError: 'str' object has no attribute 'type'"
    )


# --- projections on a database ------------------------------------------------------


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite:///{tmp_path}/read.db")
    try:
        yield db
    finally:
        await db.close()


async def add_total(event: Event, tx: Tx) -> None:
    await tx.execute(
        "INSERT INTO totals (till, total) VALUES (?, ?) ON CONFLICT (till)"
        " DO UPDATE SET total = totals.total + excluded.total",
        event.aggregateid,
        event.payload["amount"],
    )


async def fail(event: Event, tx: Tx) -> None:
    raise RuntimeError(f"cannot handle {event.type}")


def totals(database: Database) -> Projection:
    upcasters = Upcasters()
    upcasters.register("Deposited", 1)(lambda p: {"amount": p["cents"]})
    return Projection(
        name="totals",
        database=database,
        schema="CREATE TABLE IF NOT EXISTS totals (till TEXT PRIMARY KEY, total INTEGER)",
        reset_sql=["DELETE FROM totals"],
        forget_sql=["DELETE FROM totals WHERE till = ?"],
        handlers={"Deposited": add_total, "Broken": fail},
        upcasters=upcasters,
    )


def envelope(n: int, kind: str, till: str, payload: dict[str, Any], version: int = 1) -> Event:
    return Event(f"e-{n}", kind, "till", till, payload, schema_version=version)


async def read_totals(tx: Tx) -> list[tuple[Any, ...]]:
    return await tx.fetch("SELECT till, total FROM totals ORDER BY till")


async def test_a_projection_fed_events_directly(database: Database) -> None:
    fixture = ProjectionFixture(totals(database))
    given = fixture.given(
        envelope(1, "Deposited", "a", {"amount": 5}, version=2),
        envelope(2, "Deposited", "a", {"cents": 2}),  # v1: upcast first
        envelope(3, "Ignored", "a", {}),  # no handler: skipped, as the consumer does
        envelope(4, "Deposited", "b", {"amount": 1}, version=2),
    )
    assert await given.then_query(read_totals, [("a", 7), ("b", 1)]) == [("a", 7), ("b", 1)]


async def test_a_projection_that_differs(database: Database) -> None:
    given = ProjectionFixture(totals(database)).given(envelope(1, "Deposited", "a", {"cents": 5}))
    with pytest.raises(AssertionError) as caught:
        await given.then_query(read_totals, [("a", 6)])
    assert str(caught.value) == ("The query result does not match:\n  [0][1]: expected 6, actual 5")


async def test_a_projection_handler_that_fails(database: Database) -> None:
    given = ProjectionFixture(totals(database)).given(envelope(7, "Broken", "a", {}))
    with pytest.raises(AssertionError) as caught:
        await given.then_query(read_totals, [])
    assert str(caught.value) == (
        "given event #1 Broken e-7 could not be applied: RuntimeError: cannot handle Broken"
    )
    given = ProjectionFixture(totals(database)).given(envelope(8, "Broken", "a", {}, version=3))
    with pytest.raises(AssertionError) as caught:
        await given.then_query(read_totals, [])
    assert str(caught.value) == (
        "given event #1 Broken e-8 could not be applied: TooNew: Broken schema_version 3 is "
        "newer than this consumer knows (up to 1)"
    )
