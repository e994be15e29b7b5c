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
