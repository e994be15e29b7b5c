"""Where comparison results are kept: the port and the URL-based factory.

The same seam as the outbox: ``sqlite:///PATH`` (embedded default) or
``postgresql://...``; each adapter is the only module that imports its driver
and translates its errors into :class:`StoreError`.

A :class:`Result` is one stored row.  Compared samples and errors are one row
each (``count`` 1); samples shed or skipped are counted in memory and stored as
one row per endpoint, outcome and flush with their ``count``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shadow.compare import Difference

OUTCOMES = ("compared", "error", "shed", "skipped")
DEFAULT_URL = "sqlite:///./strangler-shadow.db"


class StoreError(Exception):
    """The result store failed or cannot be reached."""


# A difference as stored: the values, or their hashes unless values are kept.
FieldDiff = Difference


@dataclass(frozen=True, slots=True)
class Result:
    at: float
    route: str
    method: str
    endpoint: str
    outcome: str
    count: int = 1
    reason: str = ""
    request_id: str = ""
    primary_backend: str = ""
    shadow_backend: str = ""
    primary_status: int | None = None
    shadow_status: int | None = None
    primary_ms: float | None = None
    shadow_ms: float | None = None
    diffs: tuple[FieldDiff, ...] = ()
    noise: tuple[str, ...] | None = None  # paths differing primary vs secondary; None: no noise
    values_kept: bool = False


def hashed(value: str) -> str:
    """What is stored instead of a value when values are not kept."""
    if not value:
        return ""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


class ResultStore(Protocol):
    url: str

    async def init(self) -> None:
        """Create the schema if it does not exist."""

    async def add(self, results: Sequence[Result]) -> None:
        """Store ``results`` in one transaction."""

    async def results(self, since: float = 0.0, route: str | None = None) -> list[Result]:
        """Results at or after ``since`` (unix time), oldest first."""
        ...

    async def checkpoint(self) -> None:
        """Fold what was written into the store's main file, on the caller's schedule
        (SQLite's WAL checkpoint, which the gateway's writers leave to the supervisor;
        nothing to do elsewhere)."""

    async def close(self) -> None: ...


def to_row(r: Result) -> tuple[object, ...]:
    """The column values of ``r`` (shared by the adapters; diffs and noise as JSON text)."""
    return (
        r.at,
        r.route,
        r.method,
        r.endpoint,
        r.outcome,
        r.count,
        r.reason,
        r.request_id,
        r.primary_backend,
        r.shadow_backend,
        r.primary_status,
        r.shadow_status,
        r.primary_ms,
        r.shadow_ms,
        json.dumps([[d.path, d.kind, d.primary, d.shadow] for d in r.diffs]),
        None if r.noise is None else json.dumps(list(r.noise)),
        r.values_kept,
    )


COLUMNS = (
    "at, route, method, endpoint, outcome, count, reason, request_id, primary_backend,"
    " shadow_backend, primary_status, shadow_status, primary_ms, shadow_ms, diffs, noise,"
    " values_kept"
)


def from_row(row: Sequence[object]) -> Result:
    diffs = json.loads(str(row[14]))
    noise = row[15]
    return Result(
        at=float(row[0]),  # type: ignore[arg-type]
        route=str(row[1]),
        method=str(row[2]),
        endpoint=str(row[3]),
        outcome=str(row[4]),
        count=int(row[5]),  # type: ignore[call-overload]
        reason=str(row[6] or ""),
        request_id=str(row[7] or ""),
        primary_backend=str(row[8] or ""),
        shadow_backend=str(row[9] or ""),
        primary_status=None if row[10] is None else int(row[10]),  # type: ignore[call-overload]
        shadow_status=None if row[11] is None else int(row[11]),  # type: ignore[call-overload]
        primary_ms=None if row[12] is None else float(row[12]),  # type: ignore[arg-type]
        shadow_ms=None if row[13] is None else float(row[13]),  # type: ignore[arg-type]
        diffs=tuple(FieldDiff(*d) for d in diffs),
        noise=None if noise is None else tuple(json.loads(str(noise))),
        values_kept=bool(row[16]),
    )
