"""``strangler outbox`` commands against an SQLite outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.capture import Doubt, Event
from gateway.cli import main
from gateway.outbox import open_store


def test_init_status_doubts_and_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    assert main(["outbox", "init", "--dsn", url]) == 0
    assert "outbox schema ready" in capsys.readouterr().out

    async def fill() -> str:
        store = open_store(url)
        await store.append(
            [
                Event("e1", "order", "1", "OrderCreated", {}, 1.0, {}),
                Event("e2", "order", "1", "OrderUpdated", {}, 2.0, {}),
            ],
            [Doubt("r9", "orders", "POST", "/api/orders", None, "gateway stopped")],
        )
        rows = await store.pending(10)
        await store.mark_failed(rows[0].seq, "record too large")
        await store.close()
        return rows[0].event.id

    blocked = asyncio.run(fill())
    assert main(["outbox", "status", "--dsn", url]) == 0
    out = capsys.readouterr().out
    assert "pending: 2" in out and "in doubt: 1" in out and "blocked: 1" in out
    assert f"strangler outbox skip {blocked}" in out
    assert main(["outbox", "doubts", "--dsn", url]) == 0
    assert (
        "r9\torders\tPOST /api/orders\tstatus=-\tNone\tgateway stopped" in capsys.readouterr().out
    )
    assert main(["outbox", "skip", "--dsn", url, blocked]) == 0
    assert main(["outbox", "skip", "--dsn", url, "nope"]) == 1


def test_outbox_url_comes_from_routes_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(
        "version: 1\nbackends: {legacy: {url: 'http://127.0.0.1:1'}}\n"
        "routes: [{name: all, split: {legacy: 1}}]\n"
        f"outbox: {{url: 'sqlite:///{tmp_path}/from-config.db'}}\n"
    )
    assert main(["outbox", "init", "-c", str(config)]) == 0
    assert (tmp_path / "from-config.db").exists()


def test_unreachable_outbox_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "status", "--dsn", "postgresql://postgres@127.0.0.1:1/x"]) == 1
    assert "outbox: PostgreSQL outbox unreachable" in capsys.readouterr().err
