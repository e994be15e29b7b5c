"""The result store contract, run against every adapter: SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shadow.store import FieldDiff, Result, ResultStore, StoreError, hashed, open_store


def compared(at: float, route: str = "r", **kw: object) -> Result:
    base: dict[str, object] = {
        "at": at,
        "route": route,
        "method": "GET",
        "endpoint": "/api/orders/{id}",
        "outcome": "compared",
        "request_id": f"req-{at}",
        "primary_backend": "legacy",
        "shadow_backend": "v2",
        "primary_status": 200,
        "shadow_status": 200,
        "primary_ms": 1.5,
        "shadow_ms": 2.5,
        "diffs": (FieldDiff("/price", "value", "1", "2"),),
        "noise": ("/ts",),
        "values_kept": True,
    }
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResultStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/shadow.db"
    else:
        url = request.getfixturevalue("pg_database")
    s = open_store(url)
    await s.init()
    await s.init()  # idempotent
    try:
        yield s
    finally:
        await s.close()


async def test_round_trip_every_field(store: ResultStore) -> None:
    rows = [
        compared(100.0),
        compared(101.0, route="other", noise=None, diffs=(), values_kept=False),
        Result(102.0, "r", "GET", "/x", "shed", count=7, reason="queue-full"),
        Result(103.0, "r", "GET", "/x", "error", reason="shadow timeout", shadow_status=None),
    ]
    await store.add(rows)
    assert await store.results() == rows


async def test_filters_by_time_and_route(store: ResultStore) -> None:
    await store.add([compared(float(t), route="a" if t % 2 else "b") for t in range(10)])
    assert [r.at for r in await store.results(since=7)] == [7.0, 8.0, 9.0]
    assert [r.at for r in await store.results(route="a")] == [1.0, 3.0, 5.0, 7.0, 9.0]
    await store.add([])  # an empty batch is a no-op
    assert len(await store.results()) == 10


async def test_a_checkpoint_keeps_every_result_readable(store: ResultStore) -> None:
    await store.add([compared(float(t)) for t in range(3)])
    await store.checkpoint()
    await store.add([compared(3.0)])
    assert [r.at for r in await store.results()] == [0.0, 1.0, 2.0, 3.0]


def test_values_are_hashed_when_not_kept() -> None:
    assert hashed("secret@example.com").startswith("sha256:")
    assert "secret" not in hashed("secret@example.com")
    assert hashed("") == ""


def test_unknown_url_is_refused_by_name() -> None:
    with pytest.raises(StoreError, match="unsupported shadow store URL 'redis://x'"):
        open_store("redis://x")
