"""Writes the reverse sync makes in the monolith (``strangler_events/reverse_sync``): the
new service's orders, applied with their own ids and timestamps, once each, uncaptured.

A request carrying ``x-strangler-origin`` (see ``strangler_events/origin.py``) is such a
write, and differs from a client's in four ways:

* ``id``, ``created_at`` and ``updated_at`` in the body are kept, not ignored, and a PUT
  to an id that does not exist creates the row with that id (the service allocated it
  from a block it claimed, so it is below the table's sequence: nothing collides);
* with ``x-strangler-event-id`` the event id is recorded in ``strangler_sync_applied``
  in the write's transaction, and a write whose event id is recorded already changes
  nothing and answers as if it had just been applied (a retry after a lost answer);
  the table's rows are the changes applied;
* on PostgreSQL the transaction sets ``strangler.origin``, so the capture triggers write
  no outbox row for it (the gateway's capture rules skip the header likewise).
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strangler_events.database import Tx
from strangler_events.origin import EVENT_ID_HEADER, ORIGIN_HEADER, ORIGIN_SETTING

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS strangler_sync_applied (
    event_id   TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
);
"""
KEPT: Final = ("id", "created_at", "updated_at")


def origin_of(request: Request) -> str | None:
    return request.headers.get(ORIGIN_HEADER)


async def mark(tx: Tx, postgres: bool, origin: str, event_id: str | None, now: str) -> bool:
    """Set the transaction's origin and record the event; False: applied before."""
    if postgres:
        await tx.fetch("SELECT set_config(?, ?, true)", ORIGIN_SETTING, origin)
    if not event_id:
        return True
    fresh = await tx.execute(
        "INSERT INTO strangler_sync_applied (event_id, applied_at) VALUES (?, ?)"
        " ON CONFLICT DO NOTHING",
        event_id,
        now,
    )
    return bool(fresh)


def event_id_of(request: Request) -> str | None:
    return request.headers.get(EVENT_ID_HEADER)


def kept(body: dict[str, Any], ident: int) -> dict[str, Any]:
    """The fields a sync write sets besides the table's own: its id and timestamps."""
    out: dict[str, Any] = {k: body[k] for k in KEPT if k in body}
    out["id"] = ident
    return out


async def upsert(
    tx: Tx, table: str, ident: int, values: dict[str, Any], extra: dict[str, Any], now: str
) -> bool:
    """Write ``values`` (and the kept id and timestamps) to row ``ident``, creating it when
    missing; True when it was created."""
    found = await tx.fetch(f"SELECT id FROM {table} WHERE id = ?", ident)
    stamps = {"created_at": now, "updated_at": now, **extra}
    if found:
        row = {**values, "updated_at": stamps["updated_at"]}
        sets = ", ".join(f"{k} = ?" for k in row)
        await tx.execute(f"UPDATE {table} SET {sets} WHERE id = ?", *row.values(), ident)
        return False
    row = {**values, **stamps, "id": ident}
    cols = ", ".join(row)
    await tx.execute(
        f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", *row.values()
    )
    return True


def answer(row: dict[str, Any] | None, method: str, created: bool) -> Response:
    if method == "DELETE" or row is None:
        return Response(status_code=204)
    return JSONResponse(row, status_code=201 if created else 200)
