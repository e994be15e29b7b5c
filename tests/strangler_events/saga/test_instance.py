"""Instances as stored JSON, deterministic message ids, decisions."""

from __future__ import annotations

from strangler_events.saga.instance import (
    COMPLETED,
    RUNNING,
    Decision,
    Instance,
    message_id,
)


def test_an_instance_survives_its_json_with_the_version_kept_apart() -> None:
    inst = Instance("s", "1", RUNNING, {"a": 1}, 10.0, 11.0, version=3, done=[0], deadline=5.0)
    inst.note(10.0, "started", type="Started")
    text = inst.to_json()
    assert '"version"' not in text
    back = Instance.from_json(text, 4)
    assert back.version == 4 and back.done == [0] and back.timeline == inst.timeline
    assert back.data == {"a": 1} and back.deadline == 5.0


def test_a_copy_is_independent() -> None:
    inst = Instance("s", "1", RUNNING, {"a": 1}, 10.0, 10.0)
    copy = inst.copy()
    copy.data["a"] = 2
    copy.done.append(1)
    assert inst.data == {"a": 1} and inst.done == []


def test_terminal_states() -> None:
    assert Instance("s", "1", COMPLETED, {}, 0, 0).terminal
    assert not Instance("s", "1", RUNNING, {}, 0, 0).terminal


def test_message_ids_are_the_same_for_the_same_send_and_differ_otherwise() -> None:
    first = message_id("s", "1", "pay", "command", 1)
    assert first == message_id("s", "1", "pay", "command", 1)
    assert first != message_id("s", "1", "pay", "command", 2)
    assert first != message_id("s", "2", "pay", "command", 1)
    assert first != message_id("s", "1", "pay", "compensation", 1)


def test_nothing_says_why() -> None:
    decision = Decision.nothing("duplicate")
    assert decision.instance is None and decision.ignored == "duplicate"
    assert decision.messages == [] and decision.facts == []
