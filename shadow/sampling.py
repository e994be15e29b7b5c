"""Deterministic sampling and endpoint templates (pure).

``Sampler(10).take()`` is true for exactly 10% of calls, spread evenly: over any
run of 1,000 consecutive calls it selects 100 ± 1.  A counter, not a random draw,
so a small percentage still samples from the first requests on.

    >>> s = Sampler(25)
    >>> [s.take() for _ in range(8)]
    [False, False, False, True, False, False, False, True]
    >>> template("/api/orders/123/items/9f1c2e3a-7b4d-4c1e-8a2b-1234567890ab")
    '/api/orders/{id}/items/{id}'
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

SCALE: Final = 100_000  # percent in thousandths


class Sampler:
    __slots__ = ("_n", "_q")

    def __init__(self, percent: float) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be within 0-100, got {percent}")
        self._q = round(percent * 1000)
        self._n = 0

    def take(self) -> bool:
        q = self._q
        if q == SCALE:  # 100%: every call, without the arithmetic
            return True
        n = self._n
        self._n = n + 1
        return (n + 1) * q // SCALE > n * q // SCALE


_ID: Final = re.compile(
    r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{20,}"
)


@lru_cache(maxsize=4096)
def template(path: str) -> str:
    """The endpoint of ``path``: segments that look like ids (numbers, uuids, long hex or
    long tokens with digits) collapsed to ``{id}``."""
    return "/".join("{id}" if _ID.fullmatch(s) else s for s in path.split("/"))
