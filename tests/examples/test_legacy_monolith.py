"""The example monolith's API on both of its databases: SQLite (default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from examples.legacy_monolith.app import create_app
from tests.harness import UvicornThread


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "legacy.db")
    url: str = request.getfixturevalue("pg_database")
    return url


async def test_crud(database: str) -> None:
    with UvicornThread(create_app(database), lifespan="on") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/api/orders", json={"customer": "ann", "item": "book", "quantity": 2}
            )
            assert created.status_code == 201
            order = created.json()
            assert order["id"] == 1 and order["status"] == "new" and order["quantity"] == 2
            patched = (await client.patch("/api/orders/1", json={"status": "paid"})).json()
            assert patched["status"] == "paid" and patched["quantity"] == 2
            assert patched["updated_at"] > order["updated_at"]
            put = await client.put("/api/orders/1", json={"customer": "bo", "item": "pen"})
            assert put.json()["customer"] == "bo"
            bad = await client.put("/api/orders/1", json={"item": "pen"})
            assert bad.status_code == 422 and bad.json() == {"error": "missing field(s): customer"}
            user = await client.post("/api/users", json={"name": "Ann"})
            assert user.json()["email"] == ""
            assert [o["id"] for o in (await client.get("/api/orders")).json()] == [1]
            assert (await client.delete("/api/orders/1")).status_code == 204
            gone = await client.get("/api/orders/1")
            assert gone.status_code == 404 and gone.json() == {"error": "order 1 not found"}
            assert (await client.post("/api/orders", content=b"nope")).status_code == 422


async def test_reverse_sync_writes_keep_ids_and_apply_once(database: str) -> None:
    sync = {"x-strangler-origin": "reverse-sync"}
    order = {
        "id": 500,
        "customer": "ann",
        "item": "book",
        "quantity": 2,
        "status": "new",
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
    }
    with UvicornThread(create_app(database), lifespan="on") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            one = {**sync, "x-strangler-event-id": "e1"}
            made = await client.put("/api/orders/500", json=order, headers=one)
            assert made.status_code == 201 and made.json() == order  # its id and timestamps
            later = {**order, "status": "paid", "updated_at": "2026-01-02T00:00:00+00:00"}
            two = {**sync, "x-strangler-event-id": "e2"}
            assert (await client.put("/api/orders/500", json=later, headers=two)).json() == later
            again = await client.put("/api/orders/500", json=order, headers=one)  # e1 again
            assert again.status_code == 200 and again.json() == later  # changed nothing
            assert (await client.get("/api/orders/500")).json() == later
            bad = await client.put("/api/orders/500", json={"id": 500}, headers=sync)
            assert bad.status_code == 422  # still validated
            missing = await client.patch("/api/orders/9", json={"status": "x"}, headers=sync)
            assert missing.status_code == 404
            # a client's own create still gets the next id of the table's sequence
            own = await client.post("/api/orders", json={"customer": "bo", "item": "pen"})
            assert own.json()["id"] != 500
            three = {**sync, "x-strangler-event-id": "e3"}
            assert (await client.delete("/api/orders/500", headers=three)).status_code == 204
            assert (await client.delete("/api/orders/500", headers=three)).status_code == 204
            gone = await client.get("/api/orders/500")
            assert gone.status_code == 404
