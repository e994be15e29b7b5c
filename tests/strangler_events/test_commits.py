"""A group commit that hangs does not hold up a stop; one that finishes or fails is
waited for as before."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from strangler_events.commits import commit


class Group:
    def __init__(self, hangs: bool = False, fails: bool = False) -> None:
        self.hangs, self.fails = hangs, fails
        self.committed: list[dict[Any, int]] = []
        self.cancelled = False

    async def commit(self, offsets: Mapping[Any, int]) -> None:
        if self.fails:
            raise ConnectionError("coordinator gone")
        if self.hangs:  # aiokafka while the group's coordinator is not available
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.committed.append(dict(offsets))


async def test_a_commit_that_finishes_is_waited_for() -> None:
    group = Group()
    assert await commit(group, {"tp": 5}, asyncio.Event()) is True
    assert group.committed == [{"tp": 5}]


async def test_a_failed_commit_raises_its_error() -> None:
    with pytest.raises(ConnectionError, match="coordinator gone"):
        await commit(Group(fails=True), {"tp": 5}, asyncio.Event())


async def test_a_hanging_commit_is_abandoned_once_stopping_after_the_grace() -> None:
    group, stopping = Group(hangs=True), asyncio.Event()
    loop = asyncio.get_running_loop()
    committing = asyncio.ensure_future(commit(group, {"tp": 5}, stopping, grace=0.2))
    await asyncio.sleep(0)
    assert not committing.done()  # not stopping: the commit is waited for
    stopping.set()
    started = loop.time()
    assert await asyncio.wait_for(committing, 5) is False
    assert 0.15 <= loop.time() - started < 5 and group.cancelled


async def test_already_stopping_a_commit_still_gets_its_grace() -> None:
    stopping = asyncio.Event()
    stopping.set()
    group = Group()
    assert await commit(group, {"tp": 7}, stopping) is True
    assert group.committed == [{"tp": 7}]
