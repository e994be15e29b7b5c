"""Batch mode's decision for :class:`~strangler_events.consumer.ResilientConsumer`: can
the records of one fetch from one partition be handled together in one transaction, and
with which handlers (pure: no I/O).

They can when every record is an event the upcasters know.  A record to dead-letter at
once (not an event, a version too new, a type with no handler under the
``dead-letter`` policy) makes the whole batch go one event at a time, so that what is
dead-lettered, and where the stored position stands around it, stays as without
batches.  A type with no handler under the ``skip`` policy is passed over in the batch
(``None`` as its handler).  :func:`timed` measures each handler of a batch, for the
metrics counted once the batch committed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from strangler_events.database.port import Tx
from strangler_events.envelope import BadEvent, Event, decode
from strangler_events.upcast import TooNew, Upcasters

Handler = Callable[[Event, Tx | None], Awaitable[None]]
Plan = list[tuple[Event, Handler | None]]


def plan(
    records: Sequence[Any],
    upcasters: Upcasters,
    handlers: Mapping[str, Handler],
    unknown: str,
) -> Plan | None:
    """Each record's event and its handler (``None``: skipped, no handler), or ``None``
    when some record must be dead-lettered and the batch goes one event at a time."""
    items: Plan = []
    for record in records:
        try:
            event = upcasters.upcast(decode(record.value))
        except (BadEvent, TooNew):
            return None
        handler = handlers.get(event.type)
        if handler is None and unknown != "skip":
            return None
        items.append((event, handler))
    return items


def timed(handler: Handler, spent: list[float]) -> Handler:
    """``handler``, appending each call's duration (seconds) to ``spent``."""

    async def run(event: Event, tx: Tx | None) -> None:
        start = time.perf_counter()
        await handler(event, tx)
        spent.append(time.perf_counter() - start)

    return run
