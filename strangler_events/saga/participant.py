"""A saga participant: handles commands idempotently and replies through the outbox.

A participant's action does its effect on the participant's database in the
transaction it is given and returns a :class:`Reply`; :func:`participant_handlers`
wraps each action so the reply is written into the outbox in that same transaction.
Run the handlers with a :class:`~strangler_events.consumer.ResilientConsumer` that has
the participant's database (the inbox): the command's id, the effect and the reply then
commit together, so a re-delivered command has no second effect and its reply is sent
once.  (A command sent again after a timeout is a new message with a new id: an
action whose effect must happen once per step keys it on the saga instance, as the
checkout example's inventory and payment do.)

    async def reserve(command: Event, tx: Tx) -> Reply:
        ...  # the effect, in tx
        return Reply("InventoryReserved", {"sku": sku})

    handlers = participant_handlers({"ReserveInventory": reserve}, "inventory.replies", url)
    consumer = ResilientConsumer(bootstrap, ["events.inventory.commands"], "inventory",
                                 handlers, database=database)

Replies carry the saga's key field (``saga_key`` header of the command), the instance
id as record key, and ``causation_id`` = the command's id, which the saga uses to tell
a stale attempt's reply from the current one's.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from strangler_events.database.port import Tx
from strangler_events.envelope import Event
from strangler_events.saga import outbox
from strangler_events.saga.instance import NAMESPACE, Outgoing

Action = Callable[[Event, Tx], Awaitable["Reply"]]
Handler = Callable[[Event, Tx | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reply:
    """The event a participant answers a command with."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)


def reply_for(command: Event, reply: Reply, topic: str) -> Outgoing:
    """The outbox message answering ``command`` (its id is derived from the command's,
    so answering the same command twice names the same message)."""
    meta = command.metadata if isinstance(command.metadata, dict) else {}
    key_field = str(meta.get("saga_key") or "")
    payload = dict(reply.payload)
    if key_field and isinstance(command.payload, dict) and key_field in command.payload:
        payload.setdefault(key_field, command.payload[key_field])
    headers = {
        "causation_id": command.id,
        "correlation_id": meta.get("correlation_id", command.aggregateid),
        "saga": meta.get("saga"),
        "step": meta.get("step"),
    }
    ident = str(uuid.uuid5(NAMESPACE, f"reply/{command.id}/{reply.type}"))
    return Outgoing(ident, reply.type, topic, command.aggregateid, payload, headers)


def participant_handlers(
    actions: Mapping[str, Action], reply_topic: str, database_url: str
) -> dict[str, Handler]:
    """Consumer handlers that run each action and write its reply to the outbox (the
    topic category ``reply_topic``) in the action's transaction."""
    kind = outbox.dialect(database_url)

    def wrap(action: Action) -> Handler:
        async def handle(command: Event, tx: Tx | None) -> None:
            if tx is None:
                raise RuntimeError(
                    "a saga participant needs the consumer's database (the inbox): its "
                    "reply must commit with its effect"
                )
            reply = await action(command, tx)
            await outbox.write(tx, kind, [reply_for(command, reply, reply_topic)])

        return handle

    return {command_type: wrap(action) for command_type, action in actions.items()}
