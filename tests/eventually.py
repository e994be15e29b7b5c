"""Wait for a condition, not for time.

``eventually`` (for async tests) and ``wait_until`` (for sync tests) call a condition every
``interval`` seconds until it returns a truthy value, and return that value.  An exception
raised by the condition counts as "not yet" and is retried; ``GiveUp`` is the exception that
stops the wait at once (the awaited thing can no longer happen, e.g. the process died).
On timeout they raise ``AssertionError`` naming what was awaited and the last value or
exception seen, so a failing test says what it was waiting for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast, overload

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class GiveUp(AssertionError):
    """Raised inside a condition: stop waiting now, the condition can no longer hold."""


class _Attempts:
    """What the polling has seen so far; builds the timeout message."""

    def __init__(self, condition: Callable[[], object], timeout: float, message: str | None):
        self.what = message or describe(condition)
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.last: str = "no attempt finished"
        self.error: BaseException | None = None

    def saw_value(self, value: object) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 500 else shown[:497] + "..."
        self.last, self.error = f"last value: {shown}", None

    def saw_error(self, exc: Exception) -> None:
        self.last, self.error = f"last error: {type(exc).__name__}: {exc}", exc

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def failure(self) -> AssertionError:
        waited = f"timed out after {self.timeout:g}s waiting for {self.what}"
        return AssertionError(f"{waited}; {self.last}")


def describe(condition: Callable[[], object]) -> str:
    """A readable name for a condition: a lambda's source text, else its qualified name."""
    name = getattr(condition, "__qualname__", None) or repr(condition)
    if not name.endswith("<lambda>"):
        return name
    try:
        source = " ".join(inspect.getsource(condition).split())
    except (OSError, TypeError):
        return name
    text = _lambda_text(source)
    return text if len(text) <= 160 else text[:157] + "..."


def _lambda_text(source: str) -> str:
    """The first ``lambda ...`` expression in a line of source, without what follows it."""
    start = source.find("lambda")
    if start < 0:
        return source
    depth, quote = 0, ""
    for i in range(source.find(":", start) + 1, len(source)):
        char = source[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth > 0:
            depth -= 1
        elif char in ")]}," and depth == 0:
            return source[start:i].strip()
    return source[start:].strip()


@overload
async def eventually(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    interval: float = ...,
    message: str | None = ...,
) -> T: ...
@overload
async def eventually(
    condition: Callable[[], T | None],
    timeout: float = ...,
    interval: float = ...,
    message: str | None = ...,
) -> T: ...
async def eventually(
    condition: Callable[[], object],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    message: str | None = None,
) -> object:
    """Await ``condition`` (sync or async) until it returns a truthy value; return that value
    (typed without ``None``: a condition returning ``X | None`` gives an ``X``).

    One attempt of an async condition may take ``timeout`` seconds (at least one second)
    itself; a slower attempt counts as a ``TimeoutError``.
    """
    attempts = _Attempts(condition, timeout, message)
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(cast(Awaitable[object], value), max(timeout, 1.0))
        except GiveUp:
            raise
        except Exception as exc:
            attempts.saw_error(exc)
        else:
            if value:
                return value
            attempts.saw_value(value)
        remaining = attempts.remaining()
        if remaining <= 0:
            raise attempts.failure() from attempts.error
        await asyncio.sleep(min(interval, remaining))


def wait_until(
    condition: Callable[[], T | None],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """Call ``condition`` until it returns a truthy value; return that value (sync twin)."""
    attempts = _Attempts(condition, timeout, message)
    while True:
        try:
            value = condition()
        except GiveUp:
            raise
        except Exception as exc:
            attempts.saw_error(exc)
        else:
            if value:
                return value
            attempts.saw_value(value)
        remaining = attempts.remaining()
        if remaining <= 0:
            raise attempts.failure() from attempts.error
        time.sleep(min(interval, remaining))
