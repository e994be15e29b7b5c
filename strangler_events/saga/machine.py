"""The saga state machine (pure): state + event or time -> new state + messages to emit.

- :func:`start`: the start event creates an instance and sends the first command.
- :func:`on_reply`: a completing reply moves to the next step (or completes the saga);
  a failing reply starts compensation: the completed steps, in reverse order, one at a
  time, each after the previous one is confirmed.  A failing compensation is sent again
  after its backoff; after its last attempt the instance is parked.
- :func:`on_time`: a deadline that passed: a step's timeout sends the command again
  per its retry policy, then counts as a failure; a compensation's timeout or backoff
  sends it again, then parks.

Late replies, by rule: a success for a step that is no longer awaited (its timeout
fired and compensation started, or the saga already ended compensated) means its
effect happened after all, so that step is compensated too -- next, before the other
steps still to compensate; an instance already compensated goes back to compensating
for it, a parked one records it for the person who resolves it.  A failure reply that
answers an older attempt than the one in flight is ignored, and so is any reply the
instance no longer waits for (a duplicate); every ignored reply says why.
"""

from __future__ import annotations

from strangler_events.envelope import Event
from strangler_events.saga.definition import Command, SagaDefinition, Step
from strangler_events.saga.instance import (
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    PARKED,
    RUNNING,
    Decision,
    Fact,
    Instance,
    Outgoing,
    message_id,
)


def start(d: SagaDefinition, event: Event, now: float) -> Decision:
    """A new instance for a start event (or nothing, when the event names no key)."""
    key = d.correlate(event.payload)
    if event.type != d.start:
        return Decision.nothing(f"{event.type} does not start saga {d.name!r}")
    if key is None:
        return Decision.nothing(f"{event.type} {event.id} has no {d.key!r} in its payload")
    data = dict(event.payload) if isinstance(event.payload, dict) else {}
    inst = Instance(d.name, key, RUNNING, data, now, now)
    inst.note(now, "started", type=event.type, id=event.id)
    decision = Decision(inst, facts=[Fact("started")])
    _send_step(d, inst, decision, 0, 1, now)
    return decision


def on_reply(d: SagaDefinition, current: Instance, event: Event, now: float) -> Decision:
    """The decision for a reply event to this instance."""
    inst = current.copy()
    inst.updated_at = now
    decision = Decision(inst)
    for index, step in enumerate(d.steps):
        if event.type in step.completed_by:
            return _completed(d, inst, decision, index, event, now)
        if event.type in step.failed_by:
            return _failed(d, inst, decision, index, event, now)
        comp = step.compensation
        if comp is not None and event.type in comp.confirmed_by:
            return _confirmed(d, inst, decision, index, event, now)
        if comp is not None and event.type in comp.failed_by:
            return _compensation_failed(d, inst, decision, index, event, now)
    return Decision.nothing(f"{event.type} is no reply saga {d.name!r} knows")


def on_time(d: SagaDefinition, current: Instance, now: float) -> Decision:
    """The decision when the clock reads ``now`` (nothing unless the deadline passed)."""
    if current.deadline is None or now < current.deadline or current.terminal:
        return Decision.nothing("no deadline passed")
    inst = current.copy()
    inst.updated_at = now
    decision = Decision(inst)
    if inst.state == RUNNING:
        step = d.steps[inst.step]
        inst.note(now, "timeout", step=step.name, attempt=inst.attempt)
        decision.facts.append(Fact("timeout", step.name))
        if inst.attempt < step.retry.attempts:
            _send_step(d, inst, decision, inst.step, inst.attempt + 1, now)
        else:
            why = f"step {step.name} timed out after {inst.attempt} attempt(s)"
            _begin_compensation(d, inst, decision, why, now)
        return decision
    assert inst.compensating is not None
    step = d.steps[inst.compensating]
    if inst.waiting:
        _send_compensation(d, inst, decision, inst.compensating, inst.attempt + 1, now)
        return decision
    inst.note(now, "timeout", step=step.name, compensation=True, attempt=inst.attempt)
    decision.facts.append(Fact("timeout", step.name))
    _retry_compensation(d, inst, decision, f"compensation of {step.name} timed out", now)
    return decision


# --- replies ---------------------------------------------------------------------------


def _answers_in_flight(inst: Instance, event: Event) -> bool:
    """False when the reply names the command it answers and that is not the one in
    flight (an older attempt's)."""
    cause = event.metadata.get("causation_id") if isinstance(event.metadata, dict) else None
    return cause is None or cause == inst.in_flight


def _merge(inst: Instance, event: Event) -> None:
    if isinstance(event.payload, dict):
        inst.data.update(event.payload)


def _completed(
    d: SagaDefinition, inst: Instance, decision: Decision, index: int, event: Event, now: float
) -> Decision:
    step = d.steps[index]
    if inst.state == RUNNING and inst.step == index:
        inst.note(now, "reply", step=step.name, type=event.type, id=event.id)
        decision.facts.append(Fact("step", step.name, max(0.0, now - inst.sent_at)))
        inst.done.append(index)
        _merge(inst, event)
        if index + 1 < len(d.steps):
            _send_step(d, inst, decision, index + 1, 1, now)
        else:
            _finish(d, inst, decision, COMPLETED, None, now)
        return decision
    if index in inst.done or inst.state == RUNNING:
        return Decision.nothing(f"{event.type} for step {step.name}, which is not awaited")
    # A late success: the step's effect happened after its deadline; undo it too.
    inst.note(now, "late-reply", step=step.name, type=event.type, id=event.id)
    decision.facts.append(Fact("late", step.name))
    inst.done.append(index)
    if step.compensation is None:
        return decision
    inst.pending.insert(0, index)
    if inst.state == COMPENSATED:
        inst.state, inst.reason = COMPENSATING, f"late {event.type}: compensating {step.name}"
        _next_compensation(d, inst, decision, now)
    return decision


def _failed(
    d: SagaDefinition, inst: Instance, decision: Decision, index: int, event: Event, now: float
) -> Decision:
    step = d.steps[index]
    if inst.state != RUNNING or inst.step != index or not _answers_in_flight(inst, event):
        return Decision.nothing(f"{event.type} for step {step.name}, which is not awaited")
    inst.note(now, "reply", step=step.name, type=event.type, id=event.id, failed=True)
    _merge(inst, event)
    _begin_compensation(d, inst, decision, f"{step.name} failed: {event.type}", now)
    return decision


def _confirmed(
    d: SagaDefinition, inst: Instance, decision: Decision, index: int, event: Event, now: float
) -> Decision:
    step = d.steps[index]
    if inst.state != COMPENSATING or inst.compensating != index:
        return Decision.nothing(f"{event.type} for {step.name}'s compensation, not awaited")
    inst.note(now, "confirmed", step=step.name, type=event.type, id=event.id)
    inst.compensated.append(index)
    inst.compensating = None
    _next_compensation(d, inst, decision, now)
    return decision


def _compensation_failed(
    d: SagaDefinition, inst: Instance, decision: Decision, index: int, event: Event, now: float
) -> Decision:
    step = d.steps[index]
    if (
        inst.state != COMPENSATING
        or inst.compensating != index
        or inst.waiting
        or not _answers_in_flight(inst, event)
    ):
        return Decision.nothing(f"{event.type} for {step.name}'s compensation, not awaited")
    inst.note(now, "reply", step=step.name, type=event.type, id=event.id, failed=True)
    _retry_compensation(d, inst, decision, f"compensation of {step.name} failed", now)
    return decision


# --- moves -----------------------------------------------------------------------------


def _message(
    d: SagaDefinition, inst: Instance, step: Step, command: Command, kind: str, attempt: int
) -> Outgoing:
    ident = message_id(d.name, inst.id, step.name, kind, attempt)
    headers = {
        "saga": d.name,
        "saga_id": inst.id,
        "saga_key": d.key,
        "step": step.name,
        "kind": kind,
        "attempt": attempt,
        "correlation_id": inst.id,
    }
    payload = command.build(inst.data)
    payload.setdefault(d.key, inst.id)
    return Outgoing(ident, command.type, command.topic, inst.id, payload, headers)


def _send_step(
    d: SagaDefinition, inst: Instance, decision: Decision, index: int, attempt: int, now: float
) -> None:
    step = d.steps[index]
    msg = _message(d, inst, step, step.command, "command", attempt)
    decision.messages.append(msg)
    inst.step, inst.attempt, inst.in_flight, inst.sent_at = index, attempt, msg.id, now
    inst.deadline = None if step.timeout is None else now + step.timeout
    inst.note(now, "command", step=step.name, type=msg.type, id=msg.id, attempt=attempt)


def _send_compensation(
    d: SagaDefinition, inst: Instance, decision: Decision, index: int, attempt: int, now: float
) -> None:
    step = d.steps[index]
    assert step.compensation is not None
    comp = step.compensation
    msg = _message(d, inst, step, comp.command, "compensation", attempt)
    decision.messages.append(msg)
    inst.compensating, inst.attempt, inst.in_flight, inst.sent_at = index, attempt, msg.id, now
    inst.waiting = False
    inst.deadline = None if comp.timeout is None else now + comp.timeout
    inst.note(now, "compensate", step=step.name, type=msg.type, id=msg.id, attempt=attempt)


def _begin_compensation(
    d: SagaDefinition, inst: Instance, decision: Decision, why: str, now: float
) -> None:
    inst.state, inst.reason = COMPENSATING, why
    inst.pending = [i for i in reversed(inst.done) if d.steps[i].compensation is not None]
    inst.note(now, "failed", step=d.steps[inst.step].name, reason=why)
    _next_compensation(d, inst, decision, now)


def _next_compensation(d: SagaDefinition, inst: Instance, decision: Decision, now: float) -> None:
    inst.in_flight, inst.deadline, inst.waiting = None, None, False
    if not inst.pending:
        _finish(d, inst, decision, COMPENSATED, inst.reason, now)
        return
    _send_compensation(d, inst, decision, inst.pending.pop(0), 1, now)


def _retry_compensation(
    d: SagaDefinition, inst: Instance, decision: Decision, why: str, now: float
) -> None:
    assert inst.compensating is not None
    step = d.steps[inst.compensating]
    assert step.compensation is not None
    retry = step.compensation.retry
    if inst.attempt < retry.attempts:
        delay = retry.delay(inst.attempt)
        inst.waiting, inst.deadline, inst.in_flight = True, now + delay, None
        inst.note(now, "backoff", step=step.name, attempt=inst.attempt, seconds=delay)
        return
    reason = f"{why} after {inst.attempt} attempt(s)"
    inst.pending.insert(0, inst.compensating)  # still to do, for the person who resolves it
    inst.compensating = None
    _finish(d, inst, decision, PARKED, reason, now)


def _finish(
    d: SagaDefinition, inst: Instance, decision: Decision, state: str, why: str | None, now: float
) -> None:
    inst.state, inst.reason = state, why
    inst.deadline, inst.in_flight, inst.waiting = None, None, False
    inst.note(now, state, **({"reason": why} if why else {}))
    decision.facts.append(Fact(state))
    notify = {COMPLETED: d.on_completed, COMPENSATED: d.on_compensated, PARKED: d.on_parked}[state]
    if notify is not None:
        kind = f"{state}-{len(inst.timeline)}"  # a saga can end compensated twice (late reply)
        ident = message_id(d.name, inst.id, "-", kind, 1)
        payload = notify.build(inst.data)
        payload.setdefault(d.key, inst.id)
        if why:
            payload.setdefault("reason", why)
        headers = {"saga": d.name, "saga_id": inst.id, "correlation_id": inst.id}
        message = Outgoing(ident, notify.type, notify.topic, inst.id, payload, headers)
        decision.messages.append(message)
