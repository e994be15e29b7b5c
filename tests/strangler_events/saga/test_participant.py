"""Participants: a reply answers its command (key, causation, the saga's key field), its
id derives from the command's; on the real broker with SQLite as the inbox, a command
delivered twice runs its action once and is answered once, in the effect's transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.capture.outbox import open_store
from strangler_events.consumer import ResilientConsumer
from strangler_events.database.factory import open_database
from strangler_events.database.port import Tx
from strangler_events.envelope import Event
from strangler_events.saga.participant import Reply, participant_handlers, reply_for
from tests.strangler_events.support import count, publish, run_until, topic

COMMAND = Event(
    "cmd-1",
    "ReserveInventory",
    "inventory.commands",
    "o-1",
    {"order_id": "o-1", "sku": "book"},
    metadata={
        "saga": "checkout",
        "saga_key": "order_id",
        "step": "reserve",
        "correlation_id": "o-1",
    },
)


def test_a_reply_answers_its_command() -> None:
    reply = reply_for(COMMAND, Reply("InventoryReserved", {"sku": "book"}), "inventory.replies")
    assert (reply.type, reply.topic, reply.key) == ("InventoryReserved", "inventory.replies", "o-1")
    assert reply.payload == {"sku": "book", "order_id": "o-1"}
    assert reply.headers["causation_id"] == "cmd-1" and reply.headers["step"] == "reserve"
    assert reply.id == reply_for(COMMAND, Reply("InventoryReserved"), "x").id


async def test_a_handler_without_the_inbox_is_refused(tmp_path: Path) -> None:
    async def act(command: Event, tx: Tx) -> Reply:
        return Reply("Done")

    handlers = participant_handlers({"ReserveInventory": act}, "r", f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(RuntimeError, match="needs the consumer's database"):
        await handlers["ReserveInventory"](COMMAND, None)


async def test_a_command_delivered_twice_acts_and_replies_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/participant.db"
    box = open_store(url)
    await box.init()
    database = open_database(url)
    await database.script("CREATE TABLE effects (order_id TEXT NOT NULL)")
    runs: list[str] = []

    async def reserve(command: Event, tx: Tx) -> Reply:
        runs.append(command.id)
        await tx.execute("INSERT INTO effects (order_id) VALUES (?)", command.payload["order_id"])
        return Reply("InventoryReserved", {"sku": "book"})

    t = topic()
    await publish(kafka_bootstrap, t, [COMMAND, COMMAND])
    handlers = participant_handlers({"ReserveInventory": reserve}, "inventory.replies", url)
    consumer = ResilientConsumer(kafka_bootstrap, [t], f"g-{t}", handlers, database=database)
    await run_until(consumer, lambda: count(consumer, "duplicates", "ReserveInventory") == 1)
    assert runs == ["cmd-1"]
    (row,) = await box.pending(10)
    assert (row.event.type, row.event.aggregateid) == ("InventoryReserved", "o-1")
    async with database.transaction() as tx:
        assert await tx.fetch("SELECT order_id FROM effects") == [("o-1",)]
    await database.close()
    await box.close()
