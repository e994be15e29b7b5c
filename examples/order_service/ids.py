"""Order ids once the service creates orders: blocks claimed from the monolith's sequence.

The scheme.  The monolith stays the only allocator of order ids.  The service claims
a block of ids from it (``POST {legacy}/admin/id-blocks/orders`` with ``{"size": N}``
answers ``{"first": a, "last": b}``), which moves the monolith's own sequence past the
block, and hands those ids out one by one.  Any order the monolith creates afterwards,
on any path -- through the gateway before cut-over or after a rollback, or by a
legacy job the gateway never sees -- gets an id after the block, so the two writers
never pick the same id.  The reverse sync creates the service's orders in the monolith
with their ids; an explicit id below the sequence leaves the sequence where it is (on
SQLite's AUTOINCREMENT and PostgreSQL's sequences alike), which a disjoint range
would not: an explicit id above the monolith's sequence drags SQLite's along, and
the monolith's next order would take the id the service hands out next.

Claimed blocks are kept in the service's database (``order_id_blocks``): an id is
handed out by moving the block's ``next`` in a transaction, so a restarted service
neither asks again for ids it holds nor hands one out twice.  Ids of a block that is
never used up are just never used (gaps, as any sequence has).  The monolith must be
reachable when the service runs out of ids: a create then waits for the claim, and
fails with :class:`IdClaimError` (the service answers 503) when the claim fails.

A dry-run (shadowed) create does not take an id: :meth:`IdBlocks.peek` is the id it
would take (0 while no block is held); the shadow comparison ignores ``/id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import httpx

from strangler_events.database.port import Database, Tx

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS order_id_blocks (
    first BIGINT PRIMARY KEY,
    last  BIGINT NOT NULL,
    next  BIGINT NOT NULL
);
"""
DEFAULT_BLOCK: Final = 100

Claim = Callable[[int], Awaitable[tuple[int, int]]]


class IdClaimError(Exception):
    """No id can be handed out: the claim of a new block failed."""


def http_claim(legacy: str, table: str = "orders", timeout: float = 10.0) -> Claim:
    """Claim a block from the monolith at ``legacy`` (its base URL)."""

    async def claim(size: int) -> tuple[int, int]:
        url = f"{legacy.rstrip('/')}/admin/id-blocks/{table}"
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                reply = await client.post(url, json={"size": size})
        except httpx.HTTPError as exc:
            raise IdClaimError(f"claiming {size} {table} ids from {url}: {exc!r}") from exc
        if reply.status_code != 201:
            raise IdClaimError(
                f"claiming {size} {table} ids from {url}: {reply.status_code} {reply.text[:200]}"
            )
        block = reply.json()
        return int(block["first"]), int(block["last"])

    return claim


class IdBlocks:
    """Hands out ids from claimed blocks (one process at a time: an asyncio lock)."""

    def __init__(self, database: Database, claim: Claim, size: int = DEFAULT_BLOCK) -> None:
        if size < 1:
            raise ValueError(f"id block size {size!r} is not valid: expected at least 1")
        self.database = database
        self.claim = claim
        self.size = size
        self._lock = asyncio.Lock()

    async def init(self) -> None:
        await self.database.script(SCHEMA)

    async def next(self) -> int:
        """A new id, never handed out before; claims a block when none is left."""
        async with self._lock:
            async with self.database.transaction() as tx:
                found = await self._current(tx)
                if found is not None:
                    return await self._take(tx, found)
            first, last = await self.claim(self.size)
            if last < first:
                raise IdClaimError(f"claimed block {first}..{last} is empty")
            async with self.database.transaction() as tx:
                await tx.execute(
                    "INSERT INTO order_id_blocks (first, last, next) VALUES (?, ?, ?)",
                    first,
                    last,
                    first,
                )
                return await self._take(tx, (first, first))

    async def peek(self) -> int:
        """The id :meth:`next` would give now, without taking it (0: no block held)."""
        async with self.database.transaction() as tx:
            found = await self._current(tx)
        return 0 if found is None else found[1]

    async def _current(self, tx: Tx) -> tuple[int, int] | None:
        rows = await tx.fetch(
            "SELECT first, next FROM order_id_blocks WHERE next <= last ORDER BY first LIMIT 1"
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    async def _take(self, tx: Tx, block: tuple[int, int]) -> int:
        first, ident = block
        await tx.execute("UPDATE order_id_blocks SET next = ? WHERE first = ?", ident + 1, first)
        return ident
