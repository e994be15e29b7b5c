"""Positions that no longer fit the log: a consumer's stored next offset for a partition
above the log's end (the topic was recreated: a new broker, a restored cluster, a
memory-only broker's next run) or below the log's start (retention deleted events
this consumer never read).  Either way, resuming there would skip events without a
word; :func:`check` says so, and the consumer acts by its policy (:data:`POLICIES`):
``stop`` raises the :class:`PositionMismatch`, ``rebuild`` empties what it built and
consumes again from the beginning.
"""

from __future__ import annotations

BEYOND_END = "beyond-end"
BELOW_START = "below-start"
POLICIES = ("stop", "rebuild")

REMEDY = "rebuild the projection (policy 'rebuild') or reset the stored positions"


class PositionMismatch(Exception):
    """A position outside ``[start, end]`` of its partition's log; the message names the
    topic, the partition, the position and the log's start and end offsets."""

    def __init__(self, topic: str, partition: int, position: int, start: int, end: int) -> None:
        self.topic = topic
        self.partition = partition
        self.position = position
        self.start = start
        self.end = end
        self.kind = BEYOND_END if position > end else BELOW_START
        super().__init__(describe(self))


def describe(m: PositionMismatch) -> str:
    where = f"stored position {m.position} for {m.topic}[{m.partition}]"
    if m.kind == BEYOND_END:
        return (
            f"{where} is beyond the log end {m.end} (log start {m.start}): "
            f"the topic was recreated or truncated; {REMEDY}"
        )
    return (
        f"{where} is below the log start {m.start} (log end {m.end}): events before "
        f"{m.start} were deleted (retention) before this consumer read them; {REMEDY}"
    )


def check(
    topic: str, partition: int, position: int, start: int, end: int
) -> PositionMismatch | None:
    """The mismatch when ``position`` lies outside the log ``[start, end]``, else None
    (``position == end`` is a consumer that has read everything)."""
    if start <= position <= end:
        return None
    return PositionMismatch(topic, partition, position, start, end)


def policy(value: str) -> str:
    """``value`` when it names a policy; a ValueError naming the choices otherwise."""
    if value not in POLICIES:
        choices = " or ".join(repr(p) for p in POLICIES)
        raise ValueError(f"on_position_mismatch= must be {choices}, got {value!r}")
    return value
