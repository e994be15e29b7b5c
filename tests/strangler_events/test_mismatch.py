"""The decision: a position inside the log is fine, one past either end is a mismatch whose
message names the topic, the partition, the position and the log's offsets."""

from __future__ import annotations

import pytest

from strangler_events.mismatch import BELOW_START, BEYOND_END, PositionMismatch, check, policy


def test_positions_inside_the_log_including_its_end_are_fine() -> None:
    assert check("t", 0, 0, 0, 0) is None  # an empty log, nothing read
    assert check("t", 0, 3, 2, 9) is None
    assert check("t", 0, 9, 2, 9) is None  # everything read
    assert check("t", 0, 2, 2, 9) is None  # nothing deleted that was not read


def test_a_position_beyond_the_end_says_the_topic_was_recreated() -> None:
    found = check("events.order", 0, 6, 0, 2)
    assert isinstance(found, PositionMismatch) and found.kind == BEYOND_END
    assert str(found) == (
        "stored position 6 for events.order[0] is beyond the log end 2 (log start 0): "
        "the topic was recreated or truncated; rebuild the projection (policy 'rebuild') "
        "or reset the stored positions"
    )
    assert (found.topic, found.partition, found.position, found.start, found.end) == (
        "events.order",
        0,
        6,
        0,
        2,
    )


def test_a_position_below_the_start_says_events_were_deleted_unread() -> None:
    found = check("events.order", 3, 4, 10, 20)
    assert isinstance(found, PositionMismatch) and found.kind == BELOW_START
    assert str(found) == (
        "stored position 4 for events.order[3] is below the log start 10 (log end 20): "
        "events before 10 were deleted (retention) before this consumer read them; "
        "rebuild the projection (policy 'rebuild') or reset the stored positions"
    )


def test_only_the_known_policies_are_accepted() -> None:
    assert policy("stop") == "stop" and policy("rebuild") == "rebuild"
    with pytest.raises(ValueError, match="must be 'stop' or 'rebuild', got 'skip'"):
        policy("skip")
