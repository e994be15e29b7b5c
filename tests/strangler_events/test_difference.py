"""Comparing events and values: what is compared, the paths and values named, the table."""

from __future__ import annotations

from dataclasses import dataclass

from strangler_events.aggregate import DomainEvent, PendingEvent
from strangler_events.difference import (
    MISSING,
    Difference,
    differences,
    event_differences,
    event_mismatch,
    summary,
    value_mismatch,
    view,
)
from strangler_events.envelope import Event
from strangler_events.eventstore.port import NewEvent, RecordedEvent


@dataclass(frozen=True)
class Paid(DomainEvent):
    amount: int
    lines: tuple[str, ...] = ()


def recorded(version: int, amount: int, **changes: object) -> RecordedEvent:
    fields: dict[str, object] = {
        "id": f"id-{version}",
        "stream": "order-1",
        "version": version,
        "position": 100 + version,
        "type": "Paid",
        "schema_version": 1,
        "data": {"amount": amount},
        "metadata": {"correlation_id": "c-1"},
        "recorded_at": 1700000000.0 + version,
    }
    fields.update(changes)
    return RecordedEvent(**fields)  # type: ignore[arg-type]


def test_views_of_each_kind_of_event() -> None:
    assert view(Paid(5, ("a",))) == {
        "type": "Paid",
        "schema_version": 1,
        "data": {"amount": 5, "lines": ["a"]},
    }
    assert view(PendingEvent("e-1", 3, Paid(5))) == {
        "id": "e-1",
        "version": 3,
        "type": "Paid",
        "schema_version": 1,
        "data": {"amount": 5, "lines": []},
    }
    assert view(NewEvent("Paid", {"amount": 5}, id="n-1")) == {
        "type": "Paid",
        "data": {"amount": 5},
        "metadata": {},
        "id": "n-1",
        "schema_version": 1,
    }
    assert view({"type": "Paid", "data": (1, 2)}) == {"type": "Paid", "data": [1, 2]}
    assert view(Event("e", "Paid", "order", "1", {"amount": 5}))["payload"] == {"amount": 5}


def test_views_refuse_what_is_not_an_event() -> None:
    try:
        view(42)
    except TypeError as exc:
        assert str(exc) == "cannot compare 42: expected an event, a dataclass or a mapping"
    else:
        raise AssertionError("view(42) did not raise")


def test_differences_name_each_leaf_path_with_both_values() -> None:
    expected = {"a": {"b": [1, 2, 3], "c": "x"}, "d": True, "my key": 1}
    actual = {"a": {"b": [1, 5], "c": "x", "e": None}, "d": 1, "my key": 2}
    assert [str(d) for d in differences(expected, actual)] == [
        "a.b[1]: expected 2, actual 5",
        "a.b[2]: expected 3, actual <missing>",
        "a.e: expected <missing>, actual None",
        "d: expected True, actual 1",
        "['my key']: expected 1, actual 2",
    ]
    assert str(Difference("", 3, 4)) == "expected 3, actual 4"
    assert differences({"x": 1.0}, {"x": 1}) == []


def test_generated_fields_are_ignored_unless_asked() -> None:
    a, b = recorded(1, 5), recorded(1, 5, id="other", position=7, recorded_at=0.0)
    assert event_differences(a, b) == []
    assert [d.path for d in event_differences(a, b, strict=True)] == [
        "id",
        "position",
        "recorded_at",
    ]
    assert [d.path for d in event_differences(a, b, compare=["id", "data.amount"])] == ["id"]


def test_by_default_only_fields_both_sides_carry_are_compared() -> None:
    new = NewEvent("Paid", {"amount": 5}, metadata={"correlation_id": "c-1"})
    assert event_differences(new, recorded(1, 5)) == []
    assert event_differences({"type": "Paid"}, recorded(1, 5)) == []
    assert [str(d) for d in event_differences(Paid(5), recorded(1, 5), strict=True)] == [
        "data.lines: expected [], actual <missing>",
        "id: expected <missing>, actual 'id-1'",
        "stream: expected <missing>, actual 'order-1'",
        "version: expected <missing>, actual 1",
        "position: expected <missing>, actual 101",
        "metadata: expected <missing>, actual {'correlation_id': 'c-1'}",
        "recorded_at: expected <missing>, actual 1700000001.0",
    ]
    assert event_differences({"data": {}}, {}, compare=["data.x"]) == []


def test_the_table_marks_differing_rows_and_lists_each_difference() -> None:
    report = event_mismatch(
        [recorded(1, 5), recorded(2, 50), recorded(3, 7)],
        [recorded(1, 5), recorded(2, 40, metadata={"correlation_id": "c-2"})],
    )
    assert report == (
        "The events do not match the expected events: 1 differs, 1 missing\n"
        "(generated fields ignored: id, occurred_at, position, recorded_at, timestamp)\n"
        "\n"
        "    #  Expected         |  Actual\n"
        "    1  Paid(amount=5)   |  Paid(amount=5)\n"
        ">>  2  Paid(amount=50)  |  Paid(amount=40)\n"
        ">>  3  Paid(amount=7)   |  (none)\n"
        "\n"
        "  #2 data.amount: expected 50, actual 40\n"
        "  #2 metadata.correlation_id: expected 'c-1', actual 'c-2'\n"
        "  #3 missing: Paid(amount=7)"
    )


def test_extra_events_another_type_and_the_comparison_rule() -> None:
    report = event_mismatch(
        [{"type": "Paid", "data": {"amount": 5}}],
        [{"type": "Refunded", "data": {"amount": 5}}, {"type": "Paid", "data": {"amount": 1}}],
        compare=["type"],
        title="Not as expected",
    )
    assert report == (
        "Not as expected: 1 differs, 1 extra\n"
        "(compared: type)\n"
        "\n"
        "    #  Expected        |  Actual\n"
        ">>  1  Paid(amount=5)  |  Refunded(amount=5)\n"
        ">>  2  (none)          |  Paid(amount=1)\n"
        "\n"
        "  #1 type: expected 'Paid', actual 'Refunded'\n"
        "  #1 actual: Refunded(amount=5)\n"
        "  #2 extra: Paid(amount=1)"
    )
    strict = event_mismatch([Paid(1)], [Paid(2)], strict=True)
    assert strict is not None and strict.splitlines()[1] == "(every field compared)"
    assert event_mismatch([Paid(1)], [Paid(1)]) is None
    assert event_mismatch([], []) is None


def test_long_cells_are_clipped_in_the_table_but_not_in_the_details() -> None:
    long = "x" * 60
    report = event_mismatch([], [{"type": "Noted", "data": {"text": long}}])
    assert report is not None
    row = report.splitlines()[3]
    assert row == ">>  1  (none)    |  Noted(text='" + "x" * 33 + "..."  # 48 characters
    assert report.splitlines()[-1] == f"  #1 extra: Noted(text='{long}')"


def test_summaries() -> None:
    assert summary(Paid(5)) == "Paid(amount=5, lines=[])"
    assert summary({"type": "Ping"}) == "Ping"
    assert summary({"type": "Ping", "data": 3}) == "Ping(3)"
    assert summary({"n": 1}) == "{'n': 1}"
    assert repr(MISSING) == "<missing>"


def test_value_mismatch_names_paths_in_states_and_dataclasses() -> None:
    @dataclass
    class State:
        balance: int
        owners: list[str]

    assert value_mismatch(State(5, ["a"]), {"balance": 5, "owners": ["a"]}) is None
    assert value_mismatch(State(5, ["a"]), State(4, ["a", "b"])) == (
        "The state does not match the expected state:\n"
        "  balance: expected 5, actual 4\n"
        "  owners[1]: expected <missing>, actual 'b'"
    )
    assert value_mismatch(3, 4, "The count differs") == "The count differs:\n  expected 3, actual 4"
