"""``strangler shadow report`` over a stored SQLite result file, in all three formats."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.cli import main
from shadow.cli import parse_since
from shadow.store import FieldDiff, Result, open_store


async def stored(path: Path) -> str:
    url = f"sqlite:///{path}"
    store = open_store(url)
    await store.init()
    now = time.time()
    await store.add(
        [
            Result(
                now - 7200 if n < 10 else now - 60,
                "orders-reads",
                "GET",
                "/api/orders/{id}",
                "compared",
                request_id=f"r{n}",
                diffs=(FieldDiff("/total", "value", "sha256:a", "sha256:b"),) if n % 2 else (),
                primary_ms=1.0,
                shadow_ms=2.0,
            )
            for n in range(40)
        ]
    )
    await store.close()
    return url


async def test_report_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = await stored(tmp_path / "shadow.db")
    assert await asyncio.to_thread(main, ["shadow", "report", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "compared 40  matched 20 (50.0%)  differing 20" in out
    assert "/total" in out and "r1" in out

    assert (
        await asyncio.to_thread(
            main, ["shadow", "report", "--store", url, "--since", "1h", "--format", "json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["endpoints"][0]["compared"] == 30

    page = tmp_path / "report.html"
    args = ["shadow", "report", "--store", url, "--format", "html", "-o", str(page)]
    assert await asyncio.to_thread(main, args) == 0
    assert "<svg" in page.read_text() and "orders-reads" in page.read_text()

    assert await asyncio.to_thread(main, ["shadow", "report", "--store", url, "--route", "x"]) == 0
    assert "No shadow results stored yet." in capsys.readouterr().out


async def test_bad_since_and_bad_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    args = ["shadow", "report", "--store", url, "--since", "yesterday"]
    assert await asyncio.to_thread(main, args) == 2
    assert "--since 'yesterday': expected a duration" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["shadow", "report", "--store", "redis://x"]) == 1
    assert "unsupported shadow store URL" in capsys.readouterr().err


def test_parse_since() -> None:
    assert parse_since("90s") == 90
    assert parse_since("1.5h") == 5400
    assert parse_since("7d") == 7 * 86400
