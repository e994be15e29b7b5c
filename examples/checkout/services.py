"""Wiring the checkout example: the saga runner, the three participants, and (for a
process that has no relay of its own) the outbox relay, on one database.

In the example every service keeps its tables in the one database the relay reads, so
one relay carries the saga's commands and the participants' replies; each service
could as well have its own database and relay.
"""

from __future__ import annotations

from collections.abc import Sequence

from examples.checkout import inventory, ledger, payment, shipping
from examples.checkout.saga import CATEGORIES
from gateway.capture.kafka_sink import KafkaSink
from gateway.capture.outbox import open_store
from gateway.capture.relay import Relay, Sink
from strangler_events.consumer import ResilientConsumer
from strangler_events.database.port import Database
from strangler_events.saga.participant import participant_handlers

TEMPLATE = "events.{aggregate}"
PARTICIPANTS = ("inventory", "payment", "shipping")


async def prepare(database: Database) -> None:
    """The participants' tables (the saga store's and the outbox's are made elsewhere)."""
    await database.script(inventory.SCHEMA + payment.SCHEMA + shipping.SCHEMA + ledger.SCHEMA)


def participants(
    database: Database,
    bootstrap: str,
    *,
    only: Sequence[str] = PARTICIPANTS,
    decline_cards: Sequence[str] = (payment.DECLINED_CARD,),
    decline_over: float | None = None,
    release_failures: int = 0,
    delays: Sequence[float] = (0.2, 1.0, 2.0),
) -> list[ResilientConsumer]:
    """One consumer per participant (its command topic, its own group, the inbox), in
    batch mode."""
    services = {
        "inventory": inventory.Inventory(release_failures).actions(),
        "payment": payment.Payment(decline_cards, decline_over).actions(),
        "shipping": shipping.Shipping().actions(),
    }
    consumers = []
    for name in only:
        commands, replies = CATEGORIES[name]
        handlers = participant_handlers(services[name], replies, database.url)
        consumers.append(
            ResilientConsumer(
                bootstrap,
                [TEMPLATE.format(aggregate=commands)],
                f"checkout-{name}",
                handlers,
                database=database,
                delays=delays,
                batch=True,  # one transaction per fetch and partition
            )
        )
    return consumers


async def relay(url: str, bootstrap: str, sink: Sink | None = None) -> Relay:
    """The gateway's outbox relay on ``url`` (its table created), publishing to the broker."""
    store = open_store(url)
    await store.init()
    if sink is None:
        kafka = KafkaSink(bootstrap, TEMPLATE)
        await kafka.start()
        sink = kafka
    return Relay(store, sink, lease=2.0)
