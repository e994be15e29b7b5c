"""The saga given-when-then kit: what it passes, and that each check can fail with a
message that says what differed."""

from __future__ import annotations

import pytest

from strangler_events.envelope import Event
from strangler_events.saga.definition import Command, SagaDefinition, Step
from strangler_events.saga.fixture import SagaFixture

SAGA = SagaDefinition(
    name="one",
    start="Go",
    key="id",
    steps=(Step("a", Command("DoA", "svc.commands"), ("ADone",), ("AFailed",), timeout=10),),
    listens_to=("svc.replies",),
)
go = Event("e1", "Go", "x", "1", {"id": "1", "n": 5})
done = Event("e2", "ADone", "x", "1", {"id": "1"})
fixture = SagaFixture(SAGA)


def test_given_when_then_commands_compares_the_fields_given() -> None:
    fixture.given().when(go).then_commands(
        {"type": "DoA", "topic": "svc.commands", "payload": {"n": 5}, "headers": {"attempt": 1}}
    ).then_state("running")
    fixture.given(go).when(done).then_no_commands().then_state("completed")


def test_time_passing_fires_the_deadline_relative_to_the_last_given_event() -> None:
    fixture.given(go).when_time_passes(9.9).then_ignored("no deadline")
    fixture.given(go).when_time_passes(10).then_no_commands().then_state("compensated")


def test_failures_say_what_differed() -> None:
    with pytest.raises(AssertionError, match=r"payload.n: expected 6, actual 5"):
        fixture.given().when(go).then_commands({"type": "DoA", "payload": {"n": 6}})
    with pytest.raises(AssertionError, match=r"ignored the event: no deadline passed\): 1 missing"):
        fixture.given(go).when_time_passes(0).then_commands("X")
    with pytest.raises(AssertionError, match="Expected no commands, but the saga sent: DoA"):
        fixture.given().when(go).then_no_commands()
    with pytest.raises(AssertionError, match="expected 'completed', actual 'running'"):
        fixture.given().when(go).then_state("completed")
    with pytest.raises(AssertionError, match="moved to completed"):
        fixture.given(go).when(done).then_ignored()
    with pytest.raises(AssertionError, match="given event #1 ADone e2 was not applied"):
        fixture.given(done)
    with pytest.raises(AssertionError, match="needs an instance"):
        fixture.given().when_time_passes(1)
    with pytest.raises(TypeError, match="then_no_commands"):
        fixture.given().when(go).then_commands()
