"""The pure state machine on a small two-step saga: forward moves, compensation in
reverse one at a time, timeouts with retries, compensation retries then parking, late
successes compensated, stale and unknown replies ignored with a reason."""

from __future__ import annotations

from strangler_events.envelope import Event
from strangler_events.saga import machine
from strangler_events.saga.definition import (
    Command,
    Compensation,
    Retry,
    SagaDefinition,
    Step,
)
from strangler_events.saga.instance import Instance


def undo(name: str, attempts: int = 2) -> Compensation:
    return Compensation(
        Command(f"Undo{name}", "svc.commands"),
        confirmed_by=(f"{name}Undone",),
        failed_by=(f"{name}UndoFailed",),
        timeout=4.0,
        retry=Retry(attempts=attempts, backoff=1.0),
    )


SAGA = SagaDefinition(
    name="two",
    start="Go",
    key="id",
    steps=(
        Step(
            "a",
            Command("DoA", "svc.commands"),
            ("ADone",),
            ("AFailed",),
            5.0,
            Retry(attempts=2),
            undo("A"),
        ),
        Step(
            "b",
            Command("DoB", "svc.commands"),
            ("BDone",),
            ("BFailed",),
            5.0,
            compensation=undo("B"),
        ),
        Step("c", Command("DoC", "svc.commands"), ("CDone",), ("CFailed",)),
    ),
    listens_to=("svc.replies",),
    on_compensated=Command("Cancelled", "two"),
)


def ev(kind: str, cause: str | None = None, **payload: object) -> Event:
    meta = {"causation_id": cause} if cause else {}
    return Event(f"e-{kind}", kind, "x", "1", {"id": "1", **payload}, metadata=meta)


def run(*events: Event, at: float = 100.0) -> Instance:
    decision = machine.start(SAGA, events[0], at)
    assert decision.instance is not None
    inst = decision.instance
    for event in events[1:]:
        at += 1
        decision = machine.on_reply(SAGA, inst, event, at)
        assert decision.instance is not None, decision.ignored
        inst = decision.instance
    return inst


def test_start_needs_the_key_and_the_start_type() -> None:
    assert machine.start(SAGA, Event("e", "Go", "x", "1", {}), 0).ignored is not None
    assert machine.start(SAGA, ev("Other"), 0).ignored == "Other does not start saga 'two'"


def test_a_reply_merges_its_payload_into_the_next_command() -> None:
    inst = run(ev("Go", sku="k"))
    decision = machine.on_reply(SAGA, inst, ev("ADone", reservation="r1"), 101)
    (msg,) = decision.messages
    assert msg.type == "DoB" and msg.payload == {"id": "1", "sku": "k", "reservation": "r1"}
    assert msg.headers["step"] == "b" and msg.headers["attempt"] == 1 and msg.key == "1"
    assert [f.kind for f in decision.facts] == ["step"] and decision.facts[0].seconds == 1.0


def test_a_failure_compensates_the_completed_steps_in_reverse_one_at_a_time() -> None:
    inst = run(ev("Go"), ev("ADone"), ev("BDone"))
    failed = machine.on_reply(SAGA, inst, ev("CFailed"), 200)
    assert [m.type for m in failed.messages] == ["UndoB"]
    assert failed.instance is not None and failed.instance.pending == [0]
    undone = machine.on_reply(SAGA, failed.instance, ev("BUndone"), 201)
    assert [m.type for m in undone.messages] == ["UndoA"]
    assert undone.instance is not None
    done = machine.on_reply(SAGA, undone.instance, ev("AUndone"), 202)
    assert done.instance is not None and done.instance.state == "compensated"
    assert [m.type for m in done.messages] == ["Cancelled"]
    assert done.instance.compensated == [1, 0]


def test_a_timeout_resends_then_fails_the_step() -> None:
    inst = run(ev("Go"))
    assert machine.on_time(SAGA, inst, 104.9).ignored == "no deadline passed"
    again = machine.on_time(SAGA, inst, 105.0)
    assert [(m.type, m.headers["attempt"]) for m in again.messages] == [("DoA", 2)]
    assert again.instance is not None and again.instance.deadline == 110.0
    failed = machine.on_time(SAGA, again.instance, 110.0)
    assert failed.instance is not None and failed.instance.state == "compensated"
    assert failed.instance.reason == "step a timed out after 2 attempt(s)"


def test_a_failure_of_an_older_attempt_is_ignored() -> None:
    inst = run(ev("Go"))
    first = inst.in_flight
    again = machine.on_time(SAGA, inst, 105.0).instance
    assert again is not None
    assert machine.on_reply(SAGA, again, ev("AFailed", cause=first), 106).ignored is not None
    ok = machine.on_reply(SAGA, again, ev("AFailed", cause=again.in_flight), 106)
    assert ok.instance is not None and ok.instance.state == "compensated"


def test_a_failing_compensation_backs_off_then_parks() -> None:
    inst = run(ev("Go"), ev("ADone"), ev("BFailed"))
    assert inst.state == "compensating"
    waiting = machine.on_reply(SAGA, inst, ev("AUndoFailed"), 200).instance
    assert waiting is not None and waiting.waiting and waiting.deadline == 201.0
    resent = machine.on_time(SAGA, waiting, 201.0)
    assert [(m.type, m.headers["attempt"]) for m in resent.messages] == [("UndoA", 2)]
    assert resent.instance is not None
    parked = machine.on_time(SAGA, resent.instance, 205.0)  # its 4 s timeout
    assert parked.instance is not None and parked.instance.state == "parked"
    assert parked.instance.pending == [0]
    assert parked.instance.reason == "compensation of a timed out after 2 attempt(s)"


def test_a_late_success_while_compensating_is_compensated_next() -> None:
    inst = run(ev("Go"), ev("ADone"))
    timed_out = machine.on_time(SAGA, inst, 200.0).instance  # b timed out: undo a
    assert timed_out is not None and timed_out.compensating == 0
    late = machine.on_reply(SAGA, timed_out, ev("BDone"), 201)
    assert late.instance is not None and late.instance.pending == [1] and not late.messages
    undone = machine.on_reply(SAGA, late.instance, ev("AUndone"), 202)
    assert [m.type for m in undone.messages] == ["UndoB"]


def test_a_late_success_after_the_saga_ended_compensated_reopens_it() -> None:
    inst = run(ev("Go"), ev("ADone"))
    ended = machine.on_time(SAGA, inst, 200.0).instance
    assert ended is not None
    ended = machine.on_reply(SAGA, ended, ev("AUndone"), 201).instance
    assert ended is not None and ended.state == "compensated"
    late = machine.on_reply(SAGA, ended, ev("BDone"), 300)
    assert late.instance is not None and late.instance.state == "compensating"
    assert [m.type for m in late.messages] == ["UndoB"]
    again = machine.on_reply(SAGA, late.instance, ev("BDone"), 301)
    assert again.ignored is not None  # the same late success twice: once compensated


def test_duplicates_and_unknown_types_are_ignored_with_a_reason() -> None:
    inst = run(ev("Go"), ev("ADone"))
    assert machine.on_reply(SAGA, inst, ev("ADone"), 300).ignored == (
        "ADone for step a, which is not awaited"
    )
    assert machine.on_reply(SAGA, inst, ev("AUndone"), 300).ignored is not None
    assert machine.on_reply(SAGA, inst, ev("Nope"), 300).ignored == (
        "Nope is no reply saga 'two' knows"
    )
    assert machine.on_time(SAGA, run(ev("Go"), ev("ADone"), ev("BDone"), ev("CDone")), 1e9).ignored
