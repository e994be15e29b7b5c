"""Request bodies: whole when they fit the replay buffer, else start + stream; limits."""

from __future__ import annotations

import asyncio

import pytest

from gateway.proxy.body import BodyTooLarge, ClientTooSlow, read_body


class Pieces:
    """A Responder that yields body pieces (only ``read`` is used here)."""

    def __init__(self, *pieces: bytes, stall: bool = False) -> None:
        self.pieces = list(pieces)
        self.stall = stall

    async def read(self) -> tuple[bytes, bool]:
        if self.stall and len(self.pieces) == 1:
            await asyncio.Event().wait()
        piece = self.pieces.pop(0)
        return piece, bool(self.pieces)


async def test_small_body_is_whole() -> None:
    body, stream = await read_body(Pieces(b"ab", b"cd"), keep=10, limit=100, timeout=1)  # type: ignore[arg-type]
    assert (body, stream) == (b"abcd", None)


async def test_large_body_streams_from_its_start() -> None:
    body, stream = await read_body(Pieces(b"ab", b"cd", b"ef"), keep=3, limit=100, timeout=1)  # type: ignore[arg-type]
    assert body == b"" and stream is not None
    assert b"".join([c async for c in stream]) == b"abcdef"


async def test_limit_and_deadline() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(Pieces(b"abc", b"def"), keep=100, limit=4, timeout=1)  # type: ignore[arg-type]
    with pytest.raises(ClientTooSlow):
        await read_body(Pieces(b"abc", b"def", stall=True), keep=100, limit=100, timeout=0.05)  # type: ignore[arg-type]
