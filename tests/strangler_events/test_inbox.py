"""The inbox: one effect per event id, in the handler's transaction, with positions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strangler_events.database import Database, Tx, open_database
from strangler_events.envelope import Event
from strangler_events.inbox import CLAIM_CHUNK, Inbox


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (
        f"sqlite:///{tmp_path}/i.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    database = open_database(url)
    await database.script("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL)")
    try:
        yield database
    finally:
        await database.close()


async def effect(event: Event, tx: Tx) -> None:
    await tx.execute("INSERT INTO effects (event_id) VALUES (?)", event.id)


async def count(db: Database) -> int:
    async with db.transaction() as tx:
        return int((await tx.fetch("SELECT count(*) FROM effects"))[0][0])


async def test_an_event_has_one_effect(db: Database) -> None:
    inbox = Inbox(db, "c1")
    await inbox.init()
    e = Event("e1", "T", "a", "1")
    assert await inbox.process(e, effect, ("t", 0, 1)) is True
    assert await inbox.process(e, effect, ("t", 0, 1)) is False
    assert await count(db) == 1
    assert await Inbox(db, "c2").process(e, effect) is True  # another consumer: its own inbox
    assert await count(db) == 2
    assert await inbox.positions() == {("t", 0): 1}


async def test_a_failed_handler_leaves_no_trace(db: Database) -> None:
    inbox = Inbox(db, "c1")
    await inbox.init()

    async def failing(event: Event, tx: Tx) -> None:
        await effect(event, tx)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await inbox.process(Event("e2", "T", "a", "1"), failing, ("t", 0, 5))
    assert await count(db) == 0
    assert await inbox.positions() == {}
    assert await inbox.process(Event("e2", "T", "a", "1"), effect, ("t", 0, 5)) is True


async def test_skip_moves_the_position_and_forget_clears(db: Database) -> None:
    inbox = Inbox(db, "c1")
    await inbox.init()
    await inbox.skip(("t", 1, 7))
    await inbox.skip(("t", 1, 9))
    assert await inbox.positions() == {("t", 1): 9}
    await inbox.process(Event("e3", "T", "a", "1"), effect)
    await inbox.forget()
    assert await inbox.positions() == {}
    assert await inbox.process(Event("e3", "T", "a", "1"), effect) is True


async def test_a_batch_runs_the_new_events_in_order_in_one_transaction(db: Database) -> None:
    inbox = Inbox(db, "c1")
    await inbox.init()
    seen: list[str] = []

    async def ordered(event: Event, tx: Tx) -> None:
        seen.append(event.id)
        await effect(event, tx)

    assert await inbox.process(Event("b2", "T", "a", "1"), ordered) is True  # processed before
    seen.clear()
    batch = [Event(f"b{n}", "T", "a", "1") for n in (1, 2, 3, 1, 4)]  # b1 twice in the batch
    items = [(e, ordered if e.id != "b4" else None) for e in batch]  # b4: passed over
    ran = await inbox.process_batch(items, ("t", 0, 12))
    assert ran == [True, False, True, False, False]
    assert seen == ["b1", "b3"]
    assert await count(db) == 3
    assert await inbox.positions() == {("t", 0): 12}
    assert await inbox.process(Event("b4", "T", "a", "1"), ordered) is True  # not recorded


async def test_a_failing_handler_rolls_the_whole_batch_back(db: Database) -> None:
    inbox = Inbox(db, "c1")
    await inbox.init()

    async def third_fails(event: Event, tx: Tx) -> None:
        await effect(event, tx)
        if event.id == "f3":
            raise RuntimeError("boom on f3")

    batch = [(Event(f"f{n}", "T", "a", "1"), third_fails) for n in range(1, 5)]
    with pytest.raises(RuntimeError, match="boom on f3"):
        await inbox.process_batch(batch, ("t", 0, 40))
    assert await count(db) == 0
    assert await inbox.positions() == {}
    assert await inbox.process(Event("f1", "T", "a", "1"), effect) is True  # not recorded


async def test_a_batch_larger_than_one_insert_records_every_id(db: Database) -> None:
    inbox = Inbox(db, "c1")
    await inbox.init()
    batch = [(Event(f"l{n}", "T", "a", "1"), effect) for n in range(CLAIM_CHUNK * 2 + 7)]
    assert all(await inbox.process_batch(batch, ("t", 0, 1)))
    assert not any(await inbox.process_batch(batch, ("t", 0, 2)))
    assert await count(db) == CLAIM_CHUNK * 2 + 7
