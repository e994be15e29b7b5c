"""Background tasks with a name and a strong reference.

The event loop keeps only weak references to tasks, so a task nobody holds can
be garbage-collected mid-flight (see the note on ``asyncio.create_task``).
``spawn`` keeps each task in a set until it finishes; ruff's banned-api rule
(TID251) points every other ``asyncio.create_task`` here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_running: set[asyncio.Task[Any]] = set()
log = logging.getLogger("strangler.tasks")


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_done)
    return task


def running() -> int:
    """How many spawned tasks are still running."""
    return len(_running)
