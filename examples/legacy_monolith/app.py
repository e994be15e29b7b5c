"""A small legacy monolith: users and orders over a JSON API, on its own SQLite database.

    python -m examples.legacy_monolith --port 9001 --db ./legacy.db

It is deliberately ordinary: no events, no outbox.  The gateway in front of it
captures its writes.  Endpoints (same shape for ``users``)::

    GET    /api/orders            list, ordered by id
    GET    /api/orders/{id}       one order, 404 if missing
    POST   /api/orders            create -> 201 with the order
    PUT    /api/orders/{id}       replace fields -> 200 with the order
    PATCH  /api/orders/{id}       update some fields -> 200 with the order
    DELETE /api/orders/{id}       -> 204
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TABLES = {
    "orders": ("customer", "item", "quantity", "status"),
    "users": ("name", "email"),
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL, item TEXT NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL DEFAULT 'new',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Database:
    """One SQLite connection guarded by a lock (the app is small; writes are serial)."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def write(self, sql: str, *args: Any) -> int:
        with self.lock:
            cursor = self.conn.execute(sql, args)
            return int(cursor.lastrowid or cursor.rowcount)


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


def create_app(db_path: str = "./legacy.db") -> Starlette:
    db = Database(db_path)

    def one(table: str, ident: int) -> dict[str, Any] | None:
        rows = db.query(f"SELECT * FROM {table} WHERE id = ?", ident)
        return rows[0] if rows else None

    def collection(table: str) -> Any:
        async def endpoint(request: Request) -> Response:
            if request.method == "GET":
                return JSONResponse(db.query(f"SELECT * FROM {table} ORDER BY id"))
            values = _validate(table, await _body(request), partial=False)
            if isinstance(values, str):
                return JSONResponse({"error": values}, status_code=422)
            now = _now()
            cols = [*values, "created_at", "updated_at"]
            ident = db.write(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                *values.values(),
                now,
                now,
            )
            return JSONResponse(one(table, ident), status_code=201)

        return endpoint

    def item(table: str) -> Any:
        async def endpoint(request: Request) -> Response:
            ident = int(request.path_params["id"])
            if one(table, ident) is None:
                return JSONResponse({"error": f"{table[:-1]} {ident} not found"}, status_code=404)
            if request.method == "GET":
                return JSONResponse(one(table, ident))
            if request.method == "DELETE":
                db.write(f"DELETE FROM {table} WHERE id = ?", ident)
                return Response(status_code=204)
            values = _validate(table, await _body(request), partial=request.method == "PATCH")
            if isinstance(values, str):
                return JSONResponse({"error": values}, status_code=422)
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                db.write(
                    f"UPDATE {table} SET {sets}, updated_at = ? WHERE id = ?",
                    *values.values(),
                    _now(),
                    ident,
                )
            return JSONResponse(one(table, ident))

        return endpoint

    routes = []
    for table in TABLES:
        routes.append(Route(f"/api/{table}", collection(table), methods=["GET", "POST"]))
        routes.append(
            Route(
                f"/api/{table}/{{id:int}}", item(table), methods=["GET", "PUT", "PATCH", "DELETE"]
            )
        )
    app = Starlette(routes=routes)
    app.state.db = db
    return app


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None
