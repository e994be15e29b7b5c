"""Reading a request body from the client: whole when small, else its start plus a stream.

A body that fits in the replay buffer can be re-sent on retry and mirrored; a larger
one is streamed to the backend as it arrives.  Each read has a deadline (a client
trickling its body is cut off with 408) and the total has a limit (413).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.http.downstream import Responder


class ClientTooSlow(Exception):
    """The client took longer than ``proxy.client_timeout`` to send its body."""


class BodyTooLarge(Exception):
    """The request body grew past the route's limit."""


async def _chunks(io: Responder, limit: int, timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives, enforcing the size limit and the read deadline."""
    total = 0
    more = True
    while more:
        try:
            # A timer for the read, not a task (as asyncio.wait_for would make).
            async with asyncio.timeout(timeout):
                chunk, more = await io.read()
        except TimeoutError:
            raise ClientTooSlow from None
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge
        yield chunk


async def read_body(
    io: Responder, keep: int, limit: int, timeout: float
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Read the body up to ``keep`` bytes; return it whole, or its start plus a stream.
    Each read must arrive within ``timeout`` (slow clients are cut off with 408)."""
    chunks = _chunks(io, limit, timeout)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > keep:
            return b"", _prepend(b"".join(parts), chunks)
    return b"".join(parts), None


async def _prepend(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk
