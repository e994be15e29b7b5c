"""The SQLite result store: URL parsing and error translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadow.store import StoreError
from shadow.store.sqlite import SqliteResults, sqlite_path


def test_paths() -> None:
    assert sqlite_path("sqlite:///./x.db") == "./x.db"
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    with pytest.raises(StoreError, match="expected sqlite:///PATH"):
        sqlite_path("sqlite://x.db")


async def test_unopenable_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    store = SqliteResults(f"sqlite:///{tmp_path}/dir.db")
    with pytest.raises(StoreError, match="SQLite shadow store"):
        await store.init()
    await store.close()


async def test_results_before_init_is_a_store_error_naming_the_table(tmp_path: Path) -> None:
    store = SqliteResults(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(StoreError, match="strangler_shadow"):
        await store.results()
    await store.close()
