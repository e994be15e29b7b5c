"""The SQLite rollout store: URL and error translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.rollout.store import StoreError
from gateway.rollout.store.sqlite import SqliteRollouts


def test_a_malformed_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="expected sqlite:///PATH"):
        SqliteRollouts("sqlite://x.db")


async def test_reading_before_init_names_the_table(tmp_path: Path) -> None:
    store = SqliteRollouts(f"sqlite:///{tmp_path}/r.db")
    with pytest.raises(StoreError, match="SQLite rollout store: no such table: strangler_rollout"):
        await store.all()
    await store.close()
