"""The SQLite result store: URL parsing, error translation, and writes that start no
thread and wait only briefly for another process's lock (the contract every adapter
meets is in test_port.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from shadow.store import Result, StoreError
from shadow.store.sqlite import WRITE_BUSY_MS, SqliteResults, sqlite_path


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


def result(at: float, route: str = "api") -> Result:
    return Result(at, route, "GET", "/x", "compared", request_id=f"r{at:g}")


async def test_writes_start_no_thread(tmp_path: Path) -> None:
    # A gateway worker only ever writes: with no second thread in the process, glibc
    # keeps its single-threaded fast paths for every proxied request.
    store = SqliteResults(f"sqlite:///{tmp_path}/w.db")
    threads = set(threading.enumerate())
    await store.init()
    await store.add([result(1.0), result(2.0, "other")])
    await store.add([result(3.0)])
    assert set(threading.enumerate()) <= threads  # (one left from another test may end)
    assert [(r.at, r.route) for r in await store.results()] == [
        (1.0, "api"),
        (2.0, "other"),
        (3.0, "api"),
    ]
    assert [r.at for r in await store.results(since=2.0, route="api")] == [3.0]
    await store.close()


async def test_a_write_locked_out_fails_fast_and_loses_nothing_stored(tmp_path: Path) -> None:
    store = SqliteResults(f"sqlite:///{tmp_path}/locked.db")
    await store.init()
    await store.add([result(1.0)])
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StoreError, match="SQLite shadow store: database is locked"):
        await store.add([result(2.0)])
    assert loop.time() - started < 10 * WRITE_BUSY_MS / 1000  # not the 5 s readers wait
    other.execute("ROLLBACK")
    other.close()
    await store.add([result(2.0)])  # the batch a flush kept for later
    assert [r.at for r in await store.results()] == [1.0, 2.0]
    await store.close()


async def test_an_in_memory_store_reads_what_it_wrote() -> None:
    store = SqliteResults("sqlite:///")
    await store.init()
    await store.add([result(1.0)])
    assert [r.request_id for r in await store.results()] == ["r1"]
    await store.close()


async def test_a_write_that_fails_midway_is_rolled_back_and_the_next_one_goes_in(
    tmp_path: Path,
) -> None:
    store = SqliteResults(f"sqlite:///{tmp_path}/midway.db")
    await store.init()
    other = sqlite3.connect(tmp_path / "midway.db", isolation_level=None)
    other.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON strangler_shadow WHEN NEW.route = 'bad'"
        " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )
    other.close()
    with pytest.raises(StoreError, match="refused by a trigger"):
        await store.add([result(1.0), result(2.0, "bad")])
    await store.add([result(3.0)])  # no transaction was left open
    assert [r.at for r in await store.results()] == [3.0]  # the whole batch or none of it
    await store.close()


async def test_writes_leave_the_checkpoint_to_checkpoint(tmp_path: Path) -> None:
    # SQLite's own checkpoint would run in the commit that passes 1,000 pages of WAL,
    # fsyncs and all, on a gateway worker's loop.  Here 6 MB of results go in and the
    # database file stays as it was until the checkpoint copies them.
    path = tmp_path / "wal.db"
    store = SqliteResults(f"sqlite:///{path}")
    await store.init()
    empty = path.stat().st_size
    big = "x" * 1000
    for batch in range(60):
        await store.add(
            [
                Result(batch + i / 100, "api", "GET", "/x", "compared", request_id=big)
                for i in range(100)
            ]
        )
    assert Path(f"{path}-wal").stat().st_size > 6_000_000
    assert path.stat().st_size == empty
    await store.checkpoint()
    assert path.stat().st_size > 6_000_000
    assert len(await store.results()) == 6000
    await store.close()


async def test_checkpointing_an_in_memory_store_is_a_no_op() -> None:
    store = SqliteResults("sqlite:///")
    await store.init()
    await store.add([result(1.0)])
    await store.checkpoint()
    assert [r.at for r in await store.results()] == [1.0]
    await store.close()
