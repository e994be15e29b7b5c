"""The aggregate base: commands record and apply, history replays in order, snapshots."""

from __future__ import annotations

import doctest
from dataclasses import dataclass, field

import pytest

import strangler_events.aggregate
from strangler_events.aggregate import (
    Aggregate,
    DomainEvent,
    EventDataError,
    HistoryError,
    SnapshotError,
    UnknownEvent,
    applies,
    command,
)
from strangler_events.testing import AggregateFixture


@dataclass(frozen=True)
class Added(DomainEvent):
    item: str
    quantity: int = 1


@dataclass(frozen=True)
class Removed(DomainEvent):
    item: str


@dataclass(frozen=True)
class Renamed(DomainEvent):
    event_type = "BasketRenamed"  # stored under an older name
    schema_version = 2
    name: str
    tags: list[str] = field(default_factory=list)


class Basket(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.items: dict[str, int] = {}
        self.name = ""

    @command
    def add(self, item: str, quantity: int = 1) -> list[DomainEvent]:
        if quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {quantity}")
        return [Added(item, quantity)]

    @command
    def remove(self, item: str) -> list[DomainEvent]:
        return [Removed(item)] if item in self.items else []

    @command
    def add_twice(self, item: str) -> list[DomainEvent]:
        return [Added(item), Added(item)]

    @command
    def bogus(self) -> list[DomainEvent]:
        return ["not an event"]  # type: ignore[list-item]

    @applies(Added)
    def _added(self, event: Added) -> None:
        self.items[event.item] = self.items.get(event.item, 0) + event.quantity

    @applies(Removed)
    def _removed(self, event: Removed) -> None:
        del self.items[event.item]

    @applies(Renamed)
    def _renamed(self, event: Renamed) -> None:
        self.name = event.name


basket = AggregateFixture(Basket, id="b-1")


def test_a_command_applies_its_events_at_once_and_keeps_them_pending() -> None:
    b = Basket("b-1")
    assert b.add("tea", 2) == [Added("tea", 2)]
    assert b.add_twice("jam") == [Added("jam"), Added("jam")]
    assert b.items == {"tea": 2, "jam": 2}
    assert (b.version, b.committed_version) == (3, 0)
    assert [(p.version, p.event) for p in b.pending_events] == [
        (1, Added("tea", 2)),
        (2, Added("jam")),
        (3, Added("jam")),
    ]
    assert len({p.id for p in b.pending_events}) == 3
    b.mark_saved()
    assert (b.version, b.committed_version, b.pending_events) == (3, 3, ())


def test_commands_decide_against_state_through_the_kit() -> None:
    basket.given(Added("tea")).when(lambda b: b.add("tea", 3)).then(Added("tea", 3))
    basket.given(Added("tea")).when(lambda b: b.remove("tea")).then(Removed("tea"))
    basket.given().when(lambda b: b.remove("tea")).then_nothing()
    basket.given().when(lambda b: b.add("tea", 0)).then_raises(ValueError, match="got 0")


def test_a_command_that_returns_something_else_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Basket 'b-1': a command returned 'not an event'"):
        Basket("b-1").bogus()


def test_replay_requires_the_next_version() -> None:
    b = Basket("b-1")
    b.replay(1, Added("tea"))
    with pytest.raises(HistoryError, match="stored event Added has version 3, expected 2"):
        b.replay(3, Added("tea"))
    b.add("jam")
    with pytest.raises(HistoryError, match="cannot replay with unsaved events pending"):
        b.replay(3, Added("tea"))


def test_an_event_without_an_apply_method_is_unknown() -> None:
    @dataclass(frozen=True)
    class Emptied(DomainEvent):
        pass

    with pytest.raises(UnknownEvent) as caught:
        Basket("b-1").replay(1, Emptied())
    assert str(caught.value) == (
        "Basket 'b-1' has no apply method for event type 'Emptied' "
        "(it applies: Added, BasketRenamed, Removed)"
    )
    with pytest.raises(UnknownEvent, match="it applies: Added, BasketRenamed, Removed"):
        Basket.event_class("Emptied")


def test_another_class_with_a_known_type_name_is_refused() -> None:
    @dataclass(frozen=True)
    class Added(DomainEvent):  # noqa: F811 - deliberately the same name
        item: str

    with pytest.raises(UnknownEvent, match="two event classes share the type name"):
        Basket("b-1").replay(1, Added("tea"))


def test_decode_checks_the_schema_version_and_the_fields() -> None:
    assert Basket.decode("Added", 1, {"item": "tea"}) == Added("tea", 1)
    assert Basket.decode("BasketRenamed", 2, {"name": "x", "tags": ["a"]}) == Renamed("x", ["a"])
    with pytest.raises(EventDataError) as caught:
        Basket.decode("BasketRenamed", 1, {"name": "x"})
    assert str(caught.value) == (
        "BasketRenamed has schema version 1, Basket expects 2 "
        "(register an upcaster for the older versions)"
    )
    with pytest.raises(EventDataError) as caught:
        Basket.decode("Added", 1, {"quantity": 2, "colour": "red"})
    assert str(caught.value) == (
        "Added v1 data {'quantity': 2, 'colour': 'red'} does not fit: missing ['item'], "
        "unexpected ['colour'] (expected fields: ['item', 'quantity'])"
    )


def test_events_carry_their_type_version_and_data() -> None:
    assert (Added.event_type, Added.schema_version) == ("Added", 1)
    assert (Renamed.event_type, Renamed.schema_version) == ("BasketRenamed", 2)
    assert Renamed("x", ["a"]).to_data() == {"name": "x", "tags": ["a"]}

    class NotADataclass(DomainEvent):
        pass

    with pytest.raises(TypeError, match="NotADataclass must be a dataclass to be stored"):
        NotADataclass().to_data()
    with pytest.raises(TypeError, match="NotADataclass must be a dataclass to be stored"):
        NotADataclass.from_data({})


def test_two_apply_methods_for_one_type_are_refused() -> None:
    with pytest.raises(TypeError, match=r"Twice: Added is applied by both _one\(\) and _two\(\)"):

        class Twice(Aggregate):
            @applies(Added)
            def _one(self, event: Added) -> None:
                pass

            @applies(Added)
            def _two(self, event: Added) -> None:
                pass


def test_a_subclass_inherits_and_extends_the_apply_methods() -> None:
    @dataclass(frozen=True)
    class Wrapped(DomainEvent):
        pass

    class GiftBasket(Basket):
        def __init__(self, id: str) -> None:
            super().__init__(id)
            self.wrapped = False

        @applies(Wrapped)
        def _wrapped(self, event: Wrapped) -> None:
            self.wrapped = True

    assert GiftBasket.event_types() == ("Added", "BasketRenamed", "Removed", "Wrapped")
    assert Basket.event_types() == ("Added", "BasketRenamed", "Removed")
    AggregateFixture(GiftBasket).given(Added("tea"), Wrapped()).when(
        lambda b: b.remove("tea")
    ).then(Removed("tea"))


def test_a_snapshot_restores_the_state_at_its_version() -> None:
    b = basket.given(Added("tea", 2), Renamed("mine")).aggregate
    state = b.snapshot()
    assert state == {"items": {"tea": 2}, "name": "mine"}
    state["items"]["tea"] = 99  # a deep copy: the aggregate is not changed through it
    assert b.items == {"tea": 2}

    restored = Basket.from_snapshot("b-1", {"items": {"tea": 2}, "name": "mine"}, 2)
    assert (restored.id, restored.version, restored.items, restored.name) == (
        "b-1",
        2,
        {"tea": 2},
        "mine",
    )
    restored.replay(3, Removed("tea"))
    assert restored.items == {}


def test_a_snapshot_that_does_not_fit_is_refused() -> None:
    with pytest.raises(SnapshotError) as caught:
        Basket.from_snapshot("b-1", {"items": {}, "title": "x"}, 4)
    assert str(caught.value) == (
        "Basket snapshot of 'b-1' at version 4 does not fit: missing ['name'], unexpected ['title']"
    )
    b = Basket("b-1")
    b.add("tea")
    with pytest.raises(SnapshotError, match="cannot snapshot with unsaved events"):
        b.snapshot()


def test_repr_shows_id_version_and_state() -> None:
    b = basket.given(Added("tea")).aggregate
    assert repr(b) == "Basket(id='b-1', version=1, items={'tea': 1}, name='')"


def test_the_module_example_runs() -> None:
    result = doctest.testmod(strangler_events.aggregate)
    assert (result.failed, result.attempted > 0) == (0, True)
