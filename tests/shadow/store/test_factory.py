"""The result store adapter is picked by URL scheme; anything else is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadow.store import StoreError, open_store
from shadow.store.postgres import PostgresResults
from shadow.store.sqlite import SqliteResults


def test_adapter_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/s.db"), SqliteResults)
    assert isinstance(open_store("postgresql://u@127.0.0.1:1/db"), PostgresResults)


def test_unknown_scheme_is_named() -> None:
    with pytest.raises(StoreError, match="unsupported shadow store URL 'redis://x'"):
        open_store("redis://x")
