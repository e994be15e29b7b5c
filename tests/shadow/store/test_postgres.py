"""The PostgreSQL result store: errors are translated at the boundary."""

from __future__ import annotations

import pytest

from shadow.store import StoreError
from shadow.store.postgres import PostgresResults
from tests.harness import free_port


async def test_unreachable_server_is_a_store_error() -> None:
    store = PostgresResults(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(StoreError, match="PostgreSQL shadow store"):
        await store.init()
    await store.close()


async def test_concurrent_writers_keep_every_row(pg_database: str) -> None:
    from tests.shadow.store.test_port import compared

    a, b = PostgresResults(pg_database), PostgresResults(pg_database)
    await a.init()
    await b.init()
    try:
        for n in range(20):
            await (a if n % 2 else b).add([compared(float(n))])
        assert len(await a.results()) == 20
    finally:
        await a.close()
        await b.close()
