"""Saga messages in the gateway's outbox: a contract test against the gateway's own
outbox store (its ``init()`` makes the table, its ``pending()`` reads the rows back as
the relay publishes them), on SQLite and PostgreSQL; rolled back with the transaction;
a missing table named with the command that creates it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.capture.kafka_sink import envelope
from gateway.capture.outbox import OutboxStore
from strangler_events.database.factory import open_database
from strangler_events.database.port import Database
from strangler_events.saga import outbox
from strangler_events.saga.instance import Outgoing

MESSAGE = Outgoing(
    "2f1d3c4b-0000-4000-8000-000000000001",
    "ReserveInventory",
    "inventory.commands",
    "o-1",
    {"order_id": "o-1", "quantity": 2},
    {"saga": "checkout", "step": "reserve", "attempt": 1},
)


async def test_messages_are_what_the_relay_publishes(
    url: str, stores: tuple[Database, OutboxStore]
) -> None:
    database, box = stores
    async with database.transaction() as tx:
        await outbox.write(tx, outbox.dialect(url), [MESSAGE], now=1_700_000_000.5)
    (row,) = await box.pending(10)
    published = json.loads(envelope(row.event))
    assert published["id"] == MESSAGE.id
    assert (published["aggregatetype"], published["aggregateid"]) == ("inventory.commands", "o-1")
    assert published["type"] == "ReserveInventory"
    assert published["payload"] == {"order_id": "o-1", "quantity": 2}
    assert published["metadata"]["step"] == "reserve"
    assert published["occurred_at"] == pytest.approx(1_700_000_000.5)


async def test_messages_roll_back_with_their_transaction(
    url: str, stores: tuple[Database, OutboxStore]
) -> None:
    database, box = stores
    with pytest.raises(RuntimeError, match="abandon"):
        async with database.transaction() as tx:
            await outbox.write(tx, outbox.dialect(url), [MESSAGE])
            raise RuntimeError("abandon")
    assert await box.pending(10) == []


async def test_a_missing_outbox_table_names_the_command_that_creates_it(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path}/none.db")
    try:
        with pytest.raises(outbox.OutboxMissing, match="strangler outbox init"):
            async with database.transaction() as tx:
                await outbox.write(tx, "sqlite", [MESSAGE])
    finally:
        await database.close()


def test_the_dialect_comes_from_the_url() -> None:
    assert outbox.dialect("postgresql://u@h/d") == "postgres"
    assert outbox.dialect("sqlite:///./x.db") == "sqlite"
    with pytest.raises(ValueError, match="mysql://x"):
        outbox.dialect("mysql://x")
