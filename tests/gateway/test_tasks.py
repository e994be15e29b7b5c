"""Background tasks keep a strong reference and report failures."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from gateway.tasks import running, spawn
from tests.eventually import eventually


async def test_spawned_task_survives_garbage_collection_and_is_released() -> None:
    release, done = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        await release.wait()
        done.set()

    before = running()
    spawn(work(), name="t")
    gc.collect()
    assert running() == before + 1
    release.set()
    await asyncio.wait_for(done.wait(), 2)
    await eventually(lambda: running() == before, timeout=2)


async def test_failures_are_logged_with_the_task_name(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise ValueError("nope")

    with caplog.at_level(logging.ERROR, logger="strangler.tasks"):
        task = spawn(boom(), name="exploding")
        await asyncio.gather(task, return_exceptions=True)
        await eventually(lambda: "background task exploding failed" in caplog.text, timeout=2)
