"""A small legacy monolith: users and orders over a JSON API, on its own database
(SQLite by default, PostgreSQL when given a ``postgresql://`` URL).

    python -m examples.legacy_monolith --port 9001 --db ./legacy.db
    python -m examples.legacy_monolith --port 9001 --db postgresql://user@host/legacy

It is deliberately ordinary: no events, no outbox.  The gateway in front of it
captures its writes.  Endpoints (same shape for ``users``)::

    GET    /api/orders            list, ordered by id
    GET    /api/orders/{id}       one order, 404 if missing
    POST   /api/orders            create -> 201 with the order
    PUT    /api/orders/{id}       replace fields -> 200 with the order
    PATCH  /api/orders/{id}       update some fields -> 200 with the order
    DELETE /api/orders/{id}       -> 204

Writes carrying ``x-strangler-origin`` come from the reverse sync: see ``sync.py``.

For the service that takes over order writes (``examples/order_service/ids.py``)::

    POST   /admin/id-blocks/orders  {"size": N} -> 201 {"first": a, "last": b}: ids a..b
           are the caller's; the table's own sequence moves past them
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.legacy_monolith import sync
from strangler_events.database import Tx, open_database

TABLES = {
    "orders": ("customer", "item", "quantity", "status"),
    "users": ("name", "email"),
}
COLUMNS = {
    "orders": ("id", "customer", "item", "quantity", "status", "created_at", "updated_at"),
    "users": ("id", "name", "email", "created_at", "updated_at"),
}
TABLE_SQL = """
CREATE TABLE IF NOT EXISTS orders (
    id {key}, customer TEXT NOT NULL, item TEXT NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL DEFAULT 'new',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id {key}, name TEXT NOT NULL, email TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Database:
    """The monolith's tables, on SQLite (a path or ``sqlite:///``) or PostgreSQL."""

    def __init__(self, target: str) -> None:
        url = target if "://" in target else f"sqlite:///{target}"
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self.db = open_database(url)
        self._ready = False
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    key = (
                        "BIGSERIAL PRIMARY KEY"
                        if self.postgres
                        else "INTEGER PRIMARY KEY AUTOINCREMENT"
                    )
                    await self.db.script(TABLE_SQL.format(key=key) + sync.SCHEMA)
                    self._ready = True

    async def rows(self, tx: Tx, table: str, where: str = "", *args: Any) -> list[dict[str, Any]]:
        cols = COLUMNS[table]
        found = await tx.fetch(f"SELECT {', '.join(cols)} FROM {table} {where} ORDER BY id", *args)
        return [dict(zip(cols, row, strict=True)) for row in found]


def _validate(table: str, body: Any, partial: bool) -> dict[str, Any] | str:
    if not isinstance(body, dict):
        return "expected a JSON object"
    fields = TABLES[table]
    unknown = sorted(set(body) - set(fields) - {"id", "created_at", "updated_at"})
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    values = {k: body[k] for k in fields if k in body}
    required = {"orders": ("customer", "item"), "users": ("name",)}[table]
    missing = [k for k in required if k not in values]
    if missing and not partial:
        return f"missing field(s): {', '.join(missing)}"
    if "quantity" in values and not isinstance(values["quantity"], int):
        return "quantity must be an integer"
    return values


def _collection(database: Database, table: str) -> Any:
    """GET lists a table, POST creates a row."""

    async def endpoint(request: Request) -> Response:
        await database.ready()
        if request.method == "GET":
            async with database.db.transaction() as tx:
                return JSONResponse(await database.rows(tx, table))
        values = _validate(table, await _body(request), partial=False)
        if isinstance(values, str):
            return JSONResponse({"error": values}, status_code=422)
        now = _now()
        cols = [*values, "created_at", "updated_at"]
        async with database.db.transaction() as tx:
            [(ident,)] = await tx.fetch(
                f"INSERT INTO {table} ({', '.join(cols)})"
                f" VALUES ({', '.join('?' * len(cols))}) RETURNING id",
                *values.values(),
                now,
                now,
            )
            [created] = await database.rows(tx, table, "WHERE id = ?", ident)
        return JSONResponse(created, status_code=201)

    return endpoint


def _item(database: Database, table: str) -> Any:
    """GET, PUT, PATCH and DELETE one row."""

    async def endpoint(request: Request) -> Response:
        await database.ready()
        ident = int(request.path_params["id"])
        missing = JSONResponse({"error": f"{table[:-1]} {ident} not found"}, status_code=404)
        values: dict[str, Any] | str = {}
        body = await _body(request)
        if request.method in ("PUT", "PATCH"):
            values = _validate(table, body, partial=request.method == "PATCH")
            if isinstance(values, str):
                return JSONResponse({"error": values}, status_code=422)
        origin = sync.origin_of(request)
        if origin is not None and request.method != "GET":
            assert isinstance(values, dict)
            return await _sync(database, table, request, ident, origin, values, body)
        async with database.db.transaction() as tx:
            found = await database.rows(tx, table, "WHERE id = ?", ident)
            if not found:
                return missing
            if request.method == "GET":
                return JSONResponse(found[0])
            if request.method == "DELETE":
                await tx.execute(f"DELETE FROM {table} WHERE id = ?", ident)
                return Response(status_code=204)
            assert isinstance(values, dict)
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                await tx.execute(
                    f"UPDATE {table} SET {sets}, updated_at = ? WHERE id = ?",
                    *values.values(),
                    _now(),
                    ident,
                )
            [updated] = await database.rows(tx, table, "WHERE id = ?", ident)
        return JSONResponse(updated)

    return endpoint


async def _sync(
    database: Database,
    table: str,
    request: Request,
    ident: int,
    origin: str,
    values: dict[str, Any],
    body: Any,
) -> Response:
    """A reverse-sync write (see sync.py): kept ids and timestamps, applied once, uncaptured."""
    now = _now()
    async with database.db.transaction() as tx:
        fresh = await sync.mark(tx, database.postgres, origin, sync.event_id_of(request), now)
        found = await database.rows(tx, table, "WHERE id = ?", ident)
        if not fresh:
            return sync.answer(found[0] if found else None, request.method, False)
        if not found and request.method != "PUT":
            return JSONResponse({"error": f"{table[:-1]} {ident} not found"}, status_code=404)
        if request.method == "DELETE":
            await tx.execute(f"DELETE FROM {table} WHERE id = ?", ident)
            return Response(status_code=204)
        extra = sync.kept(body if isinstance(body, dict) else {}, ident)
        created = await sync.upsert(tx, table, ident, values, extra, now)
        [row] = await database.rows(tx, table, "WHERE id = ?", ident)
    return sync.answer(row, request.method, created)


async def claim_ids(database: Database, table: str, size: int) -> tuple[int, int]:
    """Move ``table``'s id sequence ``size`` ids on and return the ids skipped."""
    async with database.db.transaction() as tx:
        if database.postgres:
            # EXCLUSIVE keeps inserts (and their nextval) out until the block is taken
            await tx.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            [(after,)] = await tx.fetch(f"SELECT nextval({sequence})")
            [(top,)] = await tx.fetch(f"SELECT coalesce(max(id), 0) FROM {table}")
            first = max(int(after), int(top) + 1)
            await tx.fetch(f"SELECT setval({sequence}, ?)", first + size - 1)
            return first, first + size - 1
        seq = await tx.fetch("SELECT seq FROM sqlite_sequence WHERE name = ?", table)
        [(top,)] = await tx.fetch(f"SELECT coalesce(max(id), 0) FROM {table}")
        first = max(int(seq[0][0]) if seq else 0, int(top)) + 1
        if seq:
            await tx.execute(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", first + size - 1, table
            )
        else:
            await tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", table, first + size - 1
            )
        return first, first + size - 1


def _id_blocks(database: Database) -> Any:
    async def endpoint(request: Request) -> Response:
        await database.ready()
        table = request.path_params["table"]
        body = await _body(request)
        size = body.get("size") if isinstance(body, dict) else None
        if table not in TABLES:
            return JSONResponse({"error": f"no table {table}"}, status_code=404)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1_000_000:
            return JSONResponse({"error": "size must be an integer 1..1000000"}, status_code=422)
        first, last = await claim_ids(database, table, size)
        return JSONResponse({"first": first, "last": last}, status_code=201)

    return endpoint


def create_app(db: str = "./legacy.db") -> Starlette:
    """The app on ``db``: a SQLite path or URL, or a PostgreSQL URL."""
    database = Database(db)
    routes = []
    for table in TABLES:
        routes.append(Route(f"/api/{table}", _collection(database, table), methods=["GET", "POST"]))
        routes.append(
            Route(
                f"/api/{table}/{{id:int}}",
                _item(database, table),
                methods=["GET", "PUT", "PATCH", "DELETE"],
            )
        )

    routes.append(Route("/admin/id-blocks/{table}", _id_blocks(database), methods=["POST"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await database.db.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.db = database
    return app


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None
