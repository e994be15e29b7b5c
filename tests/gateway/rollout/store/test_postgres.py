"""The PostgreSQL rollout store: an unreachable server is a store error."""

from __future__ import annotations

import pytest

from gateway.rollout.store import StoreError
from gateway.rollout.store.postgres import PostgresRollouts
from tests.harness import free_port


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = PostgresRollouts(f"postgresql://u@127.0.0.1:{free_port()}/db")
    with pytest.raises(StoreError, match="PostgreSQL rollout store"):
        await store.init()
    await store.close()
