"""The SQLite rollout store: URL and error translation, and a worker's reads that start
no thread (the contract every adapter meets is in test_port.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.rollout.machine import State
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


async def _supervisor_with_orders_at_v2(tmp_path: Path) -> SqliteRollouts:
    """The supervisor's store at ``tmp_path/r.db``, with one write: orders at v2."""
    supervisor = SqliteRollouts(f"sqlite:///{tmp_path}/r.db")
    await supervisor.init()
    assert await supervisor.put(State("orders", "v2"), 0) == 1
    return supervisor


async def test_a_workers_reads_start_no_thread_and_see_the_supervisors_writes(
    tmp_path: Path,
) -> None:
    supervisor = await _supervisor_with_orders_at_v2(tmp_path)
    worker = SqliteRollouts(f"sqlite:///{tmp_path}/r.db")
    threads = set(threading.enumerate())
    await worker.init()  # what the follower calls: init, then all() once a second
    assert await worker.all() == {"orders": (State("orders", "v2"), 1)}
    assert set(threading.enumerate()) <= threads  # (one left from another test may end)
    # the supervisor's next write (its own aiosqlite connection) is read at once, and a
    # store reads its own writes through either connection
    assert await supervisor.put(State("orders", "v3"), 1) == 2
    assert await worker.get("orders") == (State("orders", "v3"), 2)
    assert await supervisor.get("orders") == (State("orders", "v3"), 2)
    await worker.close()
    await supervisor.close()


async def test_a_worker_starts_following_while_the_supervisor_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    supervisor = await _supervisor_with_orders_at_v2(tmp_path)
    writing = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    writing.execute("BEGIN IMMEDIATE")
    worker = SqliteRollouts(f"sqlite:///{tmp_path}/r.db")
    await worker.init()  # the schema is there: nothing to create, no lock to wait for
    assert await worker.all() == {"orders": (State("orders", "v2"), 1)}
    writing.execute("ROLLBACK")
    writing.close()
    await worker.close()
    await supervisor.close()


async def test_an_in_memory_store_reads_what_it_wrote() -> None:
    store = SqliteRollouts("sqlite:///")
    await store.init()
    assert await store.put(State("orders", "v2"), 0) == 1
    assert await store.all() == {"orders": (State("orders", "v2"), 1)}
    await store.close()
