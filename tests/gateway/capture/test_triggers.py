"""Trigger capture on a real PostgreSQL table: same transaction, one event per row change."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gateway.capture.triggers import TriggerError, TriggerSpec, install_sql, uninstall_sql
from gateway.cli import main


async def events(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT type, aggregateid FROM strangler_outbox ORDER BY seq")
    return [(r[0], r[1]) for r in rows]


async def test_commit_rollback_bulk_update_and_uninstall(pg_database: str) -> None:
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, item text, qty int)")
        assert (
            await asyncio.to_thread(
                main,
                [
                    "outbox",
                    "install-triggers",
                    "--dsn",
                    pg_database,
                    "--table",
                    "orders",
                    "--aggregate",
                    "order",
                ],
            )
            == 0
        )
        async with conn.transaction():
            await conn.execute("INSERT INTO orders (item, qty) VALUES ('book', 1)")
        assert await events(conn) == [("OrderCreated", "1")]
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("INSERT INTO orders (item, qty) VALUES ('pen', 1)")
                raise RuntimeError("the monolith rolls back")
        assert await events(conn) == [("OrderCreated", "1")]  # no event for the rollback

        await conn.execute("DELETE FROM strangler_outbox")
        await conn.execute(
            "INSERT INTO orders (item, qty) SELECT 'x', 0 FROM generate_series(1, 999)"
        )
        await conn.execute("DELETE FROM strangler_outbox")
        await conn.execute("UPDATE orders SET qty = qty + 1")  # one statement, 1,000 rows
        updated = await events(conn)
        assert len(updated) == 1000 and {t for t, _ in updated} == {"OrderUpdated"}
        assert len({a for _, a in updated}) == 1000

        row = await conn.fetchrow(
            "SELECT payload, headers FROM strangler_outbox WHERE aggregateid = '1'"
        )
        assert row is not None
        import json

        payload, headers = json.loads(row[0]), json.loads(row[1])
        assert payload["row"]["qty"] == 2 and payload["before"]["qty"] == 1
        assert headers["source"] == "trigger" and headers["table"] == "orders"

        await conn.execute("DELETE FROM strangler_outbox")
        await conn.execute("DELETE FROM orders WHERE id = 1")
        assert await events(conn) == [("OrderDeleted", "1")]

        # a reverse-sync write sets strangler.origin in its transaction: no row (no echo)
        await conn.execute("DELETE FROM strangler_outbox")
        async with conn.transaction():
            await conn.execute("SELECT set_config('strangler.origin', 'reverse-sync', true)")
            await conn.execute("INSERT INTO orders (id, item, qty) VALUES (5000, 'sync', 1)")
            await conn.execute("UPDATE orders SET qty = 2 WHERE id = 5000")
            await conn.execute("DELETE FROM orders WHERE id = 2")
        assert await events(conn) == []
        await conn.execute("UPDATE orders SET qty = 3 WHERE id = 5000")  # the setting ended
        assert await events(conn) == [("OrderUpdated", "5000")]

        assert (
            await asyncio.to_thread(
                main, ["outbox", "uninstall-triggers", "--dsn", pg_database, "--table", "orders"]
            )
            == 0
        )
        await conn.execute("DELETE FROM strangler_outbox")
        await conn.execute("UPDATE orders SET qty = 0")
        assert await events(conn) == []
    finally:
        await conn.close()


def test_event_names_and_identifiers_are_checked() -> None:
    spec = TriggerSpec.build("public.line_items", "line_item", "id", None)
    assert (spec.created, spec.updated, spec.deleted) == (
        "LineItemCreated",
        "LineItemUpdated",
        "LineItemDeleted",
    )
    assert '"public"."line_items"' in install_sql(spec)
    custom = TriggerSpec.build("orders", "order", "id", "Placed,Changed,Cancelled")
    assert custom.deleted == "Cancelled"
    with pytest.raises(TriggerError, match="three names"):
        TriggerSpec.build("orders", "order", "id", "A,B")
    with pytest.raises(TriggerError, match="invalid table"):
        install_sql(TriggerSpec.build("orders; DROP TABLE x", "order", "id", None))
    with pytest.raises(TriggerError, match="invalid id column"):
        install_sql(TriggerSpec.build("orders", "order", "id)--", None))
    assert "DROP FUNCTION IF EXISTS" in uninstall_sql("orders")
