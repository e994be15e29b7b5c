"""Saga definitions: what they accept, what they refuse (naming why), retry delays and
correlation."""

from __future__ import annotations

import dataclasses

import pytest

from strangler_events.saga.definition import (
    Command,
    Compensation,
    DefinitionError,
    Retry,
    SagaDefinition,
    Step,
)


def step(name: str = "a", **kw: object) -> Step:
    fields: dict[str, object] = {
        "command": Command(f"Do{name}", "svc.commands"),
        "completed_by": (f"{name}Done",),
        "failed_by": (f"{name}Failed",),
    }
    fields.update(kw)
    return Step(name, **fields)  # type: ignore[arg-type]


def saga(*steps: Step, **kw: object) -> SagaDefinition:
    fields: dict[str, object] = {
        "name": "s",
        "start": "Started",
        "key": "id",
        "steps": steps or (step(),),
        "listens_to": ("svc.replies",),
    }
    fields.update(kw)
    return SagaDefinition(**fields)  # type: ignore[arg-type]


def test_retry_delays_grow_by_the_factor_up_to_the_cap() -> None:
    retry = Retry(attempts=5, backoff=1.0, factor=3.0, max_backoff=5.0)
    assert [retry.delay(n) for n in (1, 2, 3)] == [1.0, 3.0, 5.0]


def test_a_command_payload_is_the_data_unless_built() -> None:
    assert Command("X", "t").build({"a": 1}) == {"a": 1}
    assert Command("X", "t", payload=lambda d: {"b": d["a"] + 1}).build({"a": 1}) == {"b": 2}


def test_correlation_takes_the_key_field_and_refuses_what_is_not_a_key() -> None:
    d = saga()
    assert d.correlate({"id": 42}) == "42"
    assert d.correlate({"id": ""}) is None
    assert d.correlate({"id": {"x": 1}}) is None
    assert d.correlate({"other": 1}) is None
    assert d.correlate(None) is None


def test_reply_types_cover_steps_and_compensations() -> None:
    undo = Compensation(Command("Undo", "svc.commands"), confirmed_by=("Undone",))
    d = saga(step("a", compensation=undo), step("b"))
    assert d.reply_types() == {"aDone", "aFailed", "bDone", "bFailed", "Undone"}
    assert d.step("b").name == "b"
    with pytest.raises(KeyError, match="no step 'c'"):
        d.step("c")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": ()}, "has no steps"),
        ({"unmatched": "drop"}, "unmatched='drop'"),
        ({"listens_to": ()}, "listens_to names no topic"),
        ({"steps": (step("a"), step("a"))}, "step names repeat"),
        ({"steps": (step("a", completed_by=()),)}, "completed_by names no reply"),
        ({"steps": (step("a", timeout=0),)}, "timeout must be a positive"),
        ({"steps": (step("a", retry=Retry(attempts=0)),)}, "attempts must be >= 1"),
        ({"steps": (step("a", retry=Retry(factor=0.5)),)}, "factor 0.5"),
        ({"steps": (step("a", completed_by=("Started",)),)}, "also used by the start event"),
        ({"steps": (step("a"), step("b", failed_by=("aDone",)))}, "also used by step 'a'"),
        ({"name": ""}, "needs a name"),
    ],
)
def test_a_definition_that_cannot_run_is_refused_naming_why(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        saga(**change)


def test_a_compensation_needs_a_confirming_reply() -> None:
    undo = Compensation(Command("Undo", "svc.commands"), confirmed_by=())
    with pytest.raises(DefinitionError, match="names no confirming reply"):
        saga(step("a", compensation=undo))


def test_definitions_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        saga().name = "x"  # type: ignore[misc]
