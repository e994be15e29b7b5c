"""The factory picks the adapter by URL and names what it accepts otherwise."""

from __future__ import annotations

import pytest

from gateway.rollout.store import StoreError, open_store
from gateway.rollout.store.postgres import PostgresRollouts
from gateway.rollout.store.sqlite import SqliteRollouts


def test_adapters_by_url() -> None:
    assert isinstance(open_store("sqlite:///./x.db"), SqliteRollouts)
    assert isinstance(open_store("postgresql://u@h/db"), PostgresRollouts)
    with pytest.raises(StoreError, match="unsupported rollout store URL 'mysql://x'"):
        open_store("mysql://x")
