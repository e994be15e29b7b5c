"""Writes held to the loop's next turn: made then, in order, each to its transport."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.http.batch import WriteBatch
from tests.eventually import eventually


class Sink:
    def __init__(self, log: list[tuple[str, bytes]], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails
        self.closing = False

    def write(self, data: bytes) -> None:
        if self.fails:
            raise RuntimeError("write after EOF")
        self.log.append((self.name, data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


async def test_writes_made_in_one_turn_go_out_at_the_next_in_the_order_made() -> None:
    written: list[tuple[str, bytes]] = []
    a, b = Sink(written, "a"), Sink(written, "b")
    batch = WriteBatch(asyncio.get_running_loop())
    batch.write(a, b"1")
    batch.write(b, b"2")
    batch.write(a, b"3")
    assert written == [] and batch.pending == 3
    await asyncio.sleep(0)  # the loop turns once
    assert written == [("a", b"1"), ("b", b"2"), ("a", b"3")] and batch.pending == 0
    batch.write(b, b"4")
    await eventually(lambda: written[-1] == ("b", b"4"))  # a later turn has its own


async def after_a_quiet_turn(written: list[tuple[str, bytes]]) -> tuple[Sink, WriteBatch]:
    """A sink "a" and a batch whose last turn made one write to it (b"1")."""
    a = Sink(written, "a")
    batch = WriteBatch(asyncio.get_running_loop())
    batch.write(a, b"1")  # a new batch holds: it has seen no turn yet
    assert written == []
    await asyncio.sleep(0)  # a quiet turn: one write
    assert written == [("a", b"1")]
    return a, batch


async def test_after_a_quiet_turn_a_turns_first_write_goes_out_at_once_and_the_rest_wait() -> None:
    written: list[tuple[str, bytes]] = []
    a, batch = await after_a_quiet_turn(written)
    b = Sink(written, "b")
    batch.write(b, b"2")  # nothing to gather it with: made now
    assert written == [("a", b"1"), ("b", b"2")] and batch.pending == 0
    batch.write(a, b"3")  # the same turn's second write: held, after the first
    assert batch.pending == 1
    await asyncio.sleep(0)
    assert written[-1] == ("a", b"3")


async def test_after_a_busy_turn_every_write_of_the_next_turn_is_held() -> None:
    written: list[tuple[str, bytes]] = []
    a, batch = await after_a_quiet_turn(written)
    batch.write(a, b"2")
    batch.write(a, b"3")
    await asyncio.sleep(0)  # busy: two writes
    batch.write(a, b"4")
    assert batch.pending == 1 and written[-1] == ("a", b"3")
    await asyncio.sleep(0)  # one write again: quiet
    assert written[-1] == ("a", b"4")
    batch.write(a, b"5")
    assert batch.pending == 0 and written[-1] == ("a", b"5")
    await asyncio.sleep(0)


async def test_a_write_made_at_once_skips_a_closing_transport() -> None:
    written: list[tuple[str, bytes]] = []
    a, batch = await after_a_quiet_turn(written)
    a.close()
    batch.write(a, b"2")
    assert written == [("a", b"1")] and batch.pending == 0
    await asyncio.sleep(0)


async def test_flush_makes_the_held_writes_now_and_the_turn_does_not_repeat_them() -> None:
    written: list[tuple[str, bytes]] = []
    a = Sink(written, "a")
    batch = WriteBatch(asyncio.get_running_loop())
    batch.write(a, b"held")
    batch.flush()
    assert written == [("a", b"held")]
    await asyncio.sleep(0)
    batch.flush()  # nothing held: nothing written
    assert written == [("a", b"held")]


async def test_a_closing_transport_gets_nothing_and_a_failing_one_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    written: list[tuple[str, bytes]] = []
    gone, broken, fine = (
        Sink(written, "gone"),
        Sink(written, "broken", fails=True),
        Sink(written, "fine"),
    )
    batch = WriteBatch(asyncio.get_running_loop())
    for sink in (gone, broken, fine):
        batch.write(sink, b"x")
    gone.close()
    with caplog.at_level(logging.ERROR, logger="strangler.protocol"):
        batch.flush()
    assert written == [("fine", b"x")]
    assert broken.closing and "write to a client or backend failed" in caplog.text
