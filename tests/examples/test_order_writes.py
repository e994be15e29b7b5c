"""The order service's write side: the Order aggregate's decisions, the write API's
contract against the monolith's (the same sequence of writes to both, answers compared
with ids and timestamps normalised), dry runs that commit nothing, and id blocks."""

from __future__ import annotations

import doctest
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

import examples.order_service.order
from examples.legacy_monolith.app import create_app as legacy_app
from examples.order_service.app import create_app
from examples.order_service.imports import imported_id, translate
from examples.order_service.order import (
    InvalidOrder,
    Order,
    OrderCreated,
    OrderDeleted,
    OrderExists,
    OrderNotFound,
    OrderUpdated,
)
from strangler_events.envelope import Event
from strangler_events.eventstore.factory import open_event_store
from strangler_events.testing import AggregateFixture
from tests.gateway.support import monolith
from tests.harness import UvicornThread

orders = AggregateFixture(Order, id="7")
ORDER = {
    "id": 7,
    "customer": "ann",
    "item": "pen",
    "quantity": 1,
    "status": "new",
    "created_at": "t0",
    "updated_at": "t0",
}
created = OrderCreated({"customer": "ann", "item": "pen"}, ORDER)


# --- the aggregate ------------------------------------------------------------------


def test_the_doctest() -> None:
    assert doctest.testmod(examples.order_service.order).failed == 0


def test_creating_and_changing_an_order() -> None:
    orders.given().when(lambda o: o.create({"customer": "ann", "item": "pen"}, "t0")).then(created)
    orders.given(created).when(
        lambda o: o.create({"customer": "b", "item": "c"}, "t1")
    ).then_raises(OrderExists, match="order 7 already exists")
    patched = {**ORDER, "status": "paid", "updated_at": "t1"}
    after = (
        orders.given(created)
        .when(lambda o: o.update({"status": "paid"}, "t1", partial=True))
        .then(OrderUpdated({"status": "paid"}, patched))
    )
    assert after.order == patched
    orders.given(created).when(lambda o: o.update({}, "t1", partial=True)).then_nothing()
    orders.given(created).when(lambda o: o.delete()).then(OrderDeleted())


def test_refusals_in_the_monoliths_order() -> None:
    update = orders.given().when(lambda o: o.update({"bad": 1}, "t1", partial=False))
    update.then_raises(InvalidOrder, match=r"unknown field\(s\): bad")  # before the lookup
    orders.given().when(lambda o: o.update({}, "t1", partial=True)).then_raises(
        OrderNotFound, match="order 7 not found"
    )
    orders.given(created, OrderDeleted()).when(lambda o: o.delete()).then_raises(OrderNotFound)
    for body, message in [
        (None, "expected a JSON object"),
        ({"customer": "a"}, r"missing field\(s\): item"),
        ({"customer": "a", "item": "b", "quantity": 1.5}, "quantity must be an integer"),
    ]:
        outcome = orders.given().when(lambda o: o.create(body, "t0"))  # noqa: B023 - run now
        outcome.then_raises(InvalidOrder, match=message)


# --- the contract -------------------------------------------------------------------

# (method, path, body); "$N" in a path is the id the N-th successful create answered.
SEQUENCE: list[tuple[str, str, Any]] = [
    ("POST", "/api/orders", {"customer": "ann", "item": "book", "quantity": 2}),
    ("POST", "/api/orders", {"customer": "bo", "item": "pen"}),
    ("POST", "/api/orders", {"item": "pen"}),
    ("POST", "/api/orders", []),
    ("POST", "/api/orders", b"nope"),
    ("POST", "/api/orders", {"customer": "x", "item": "y", "size": 1, "colour": "red"}),
    ("POST", "/api/orders", {"customer": "x", "item": "y", "quantity": "2"}),
    ("POST", "/api/orders", {"customer": "cy", "item": "cup", "id": 5, "created_at": "x"}),
    ("PATCH", "/api/orders/$1", {"status": "paid"}),
    ("PATCH", "/api/orders/$1", {}),
    ("PATCH", "/api/orders/$1", b"null"),
    ("PUT", "/api/orders/$1", {"item": "pen"}),
    ("PUT", "/api/orders/$1", {"customer": "dee", "item": "cup"}),
    ("PATCH", "/api/orders/$1", {"quantity": True}),
    ("PUT", "/api/orders/999999", {"customer": "a", "item": "b"}),
    ("PATCH", "/api/orders/999999", {"bad": 1}),
    ("DELETE", "/api/orders/$2", None),
    ("DELETE", "/api/orders/$2", None),
    ("PATCH", "/api/orders/$2", {"status": "x"}),
    ("PATCH", "/api/orders/$3", {"status": "sent", "quantity": 3}),
    ("DELETE", "/api/orders/999999", None),
    ("POST", "/api/orders/$1", {"customer": "a", "item": "b"}),
]


class Normaliser:
    """Ids and timestamps by order of first appearance, so that two apps' answers compare."""

    def __init__(self) -> None:
        self.ids: dict[int, str] = {}
        self.times: dict[str, str] = {}

    def __call__(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        out = dict(body)
        found = re.fullmatch(r"order (\d+) not found", str(out.get("error")))
        if found and int(found[1]) in self.ids:
            out["error"] = f"order {self.ids[int(found[1])]} not found"
        if isinstance(out.get("id"), int):
            out["id"] = self.ids.setdefault(out["id"], f"id{len(self.ids) + 1}")
        for key in ("created_at", "updated_at"):
            if key in out:
                out[key] = self.times.setdefault(out[key], f"t{len(self.times) + 1}")
        return out


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: Any


async def play(base: str, headers: dict[str, str] | None = None) -> list[Answer]:
    """Run SEQUENCE against ``base``; the answers, normalised."""
    created: list[int] = []
    normal = Normaliser()
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
        for method, path, body in SEQUENCE:
            for n, ident in enumerate(created, start=1):
                path = path.replace(f"${n}", str(ident))
            content = body if isinstance(body, bytes) else None
            data = None if body is None or content is not None else json.dumps(body).encode()
            reply = await client.request(
                method,
                path,
                content=content or data,
                headers={"content-type": "application/json"},
            )
            try:
                parsed: Any = reply.json() if reply.content else None
            except ValueError:
                parsed = reply.text
            if method == "POST" and reply.status_code == 201:
                created.append(parsed["id"])
            out.append(Answer(reply.status_code, reply.headers.get("content-type"), normal(parsed)))
    return out


@contextmanager
def service(tmp: Path, legacy: str, block: int = 100) -> Iterator[UvicornThread]:
    app = create_app(
        f"sqlite:///{tmp}/orders.db",
        None,
        legacy=legacy,
        events_url=f"sqlite:///{tmp}/events.db",
        id_block=block,
    )
    with UvicornThread(app, lifespan="on") as server:
        yield server


async def test_the_same_writes_get_the_same_answers_from_both(tmp_path: Path) -> None:
    with monolith(tmp_path) as legacy, service(tmp_path, legacy.url) as new:
        want = await play(legacy.url)
        got = await play(new.url)
    assert [a.status for a in want] == [
        201, 201, 422, 422, 422, 422, 422, 201, 200, 200, 422, 422, 200, 200,
        404, 422, 204, 404, 404, 200, 404, 405,
    ]  # fmt: skip
    for step, (expected, actual) in enumerate(zip(want, got, strict=True)):
        assert actual == expected, f"step {step}: {SEQUENCE[step]}"
    store = open_event_store(f"sqlite:///{tmp_path}/events.db")
    try:
        events = await store.read_all()
    finally:
        await store.close()
    kinds = [(e.stream_id, e.type) for e in events]
    assert [k for _, k in kinds] == ["OrderCreated"] * 3 + ["OrderUpdated"] * 3 + [
        "OrderDeleted",
        "OrderUpdated",
    ]
    assert all(e.metadata["source"] == "order-service" for e in events)


async def test_a_dry_run_answers_the_same_and_commits_nothing(tmp_path: Path) -> None:
    with monolith(tmp_path) as legacy, service(tmp_path, legacy.url) as new:
        async with httpx.AsyncClient(base_url=new.url, timeout=10) as client:
            first = (await client.post("/api/orders", json={"customer": "a", "item": "b"})).json()
            ident = first["id"]
            for marker in ("x-strangler-dry-run", "x-strangler-shadow"):
                dry = {marker: "1"}
                made = await client.post(
                    "/api/orders", json={"customer": "c", "item": "d"}, headers=dry
                )
                assert made.status_code == 201 and made.json()["id"] == ident + 1  # peeked
                bad = await client.post("/api/orders", json={"item": "d"}, headers=dry)
                assert bad.status_code == 422
                patched = await client.patch(
                    f"/api/orders/{ident}", json={"status": "x"}, headers=dry
                )
                assert patched.status_code == 200 and patched.json()["status"] == "x"
                gone = await client.delete(f"/api/orders/{ident}", headers=dry)
                assert gone.status_code == 204
                missing = await client.delete("/api/orders/999999", headers=dry)
                assert missing.status_code == 404
            real = (await client.post("/api/orders", json={"customer": "e", "item": "f"})).json()
        async with httpx.AsyncClient(base_url=legacy.url) as client:
            assert (await client.get("/api/orders")).json() == []  # the monolith saw no write
    assert real["id"] == ident + 1  # dry runs took no id
    store = open_event_store(f"sqlite:///{tmp_path}/events.db")
    try:
        events = await store.read_all()
    finally:
        await store.close()
    assert [(e.stream_id, e.type) for e in events] == [
        (str(ident), "OrderCreated"),
        (str(ident + 1), "OrderCreated"),
    ]


# --- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 3])
async def test_ids_never_collide_with_orders_the_monolith_creates_on_its_own(
    tmp_path: Path, block: int
) -> None:
    """The service creates orders with claimed ids, the reverse sync writes each into the
    monolith with its id, and a legacy path the gateway never sees keeps creating orders
    in the monolith: no id is used twice, no order overwrites another."""
    sync = {"x-strangler-origin": "reverse-sync"}
    service_ids: list[int] = []
    legacy_ids: list[int] = []

    async def round(client: httpx.AsyncClient, base: str, legacy: str, n: int) -> None:
        made = await client.post(f"{base}/api/orders", json={"customer": f"s{n}", "item": "x"})
        service_ids.append(made.json()["id"])
        synced = await client.put(
            f"{legacy}/api/orders/{made.json()['id']}", json=made.json(), headers=sync
        )
        assert synced.status_code == 201  # created with its id: nothing was there
        own = await client.post(f"{legacy}/api/orders", json={"customer": f"l{n}", "item": "y"})
        legacy_ids.append(own.json()["id"])

    for rounds in (7, 2):  # the second time a restarted service, with the blocks it holds
        with monolith(tmp_path) as legacy, service(tmp_path, legacy.url, block) as new:
            async with httpx.AsyncClient(timeout=10) as client:
                for n in range(rounds):
                    await round(client, new.url, legacy.url, n)
                everything = (await client.get(f"{legacy.url}/api/orders")).json()
    assert len(set(service_ids)) == 9 and len(set(legacy_ids)) == 9
    assert not set(service_ids) & set(legacy_ids)
    assert sorted(o["id"] for o in everything) == sorted(service_ids + legacy_ids)
    assert {o["customer"][0] for o in everything if o["id"] in service_ids} == {"s"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def legacy_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "legacy.db")
    url: str = request.getfixturevalue("pg_database")
    return url


async def test_the_monoliths_sequence_moves_past_a_claimed_block(legacy_db: str) -> None:
    with UvicornThread(legacy_app(legacy_db), lifespan="on") as legacy:
        async with httpx.AsyncClient(base_url=legacy.url) as client:
            empty = await client.post("/admin/id-blocks/orders", json={"size": 2})
            assert empty.json() == {"first": 1, "last": 2}
            one = (await client.post("/api/orders", json={"customer": "a", "item": "b"})).json()
            block = await client.post("/admin/id-blocks/orders", json={"size": 10})
            assert block.status_code == 201
            assert one["id"] == 3
            assert block.json() == {"first": one["id"] + 1, "last": one["id"] + 10}
            two = (await client.post("/api/orders", json={"customer": "a", "item": "b"})).json()
            assert two["id"] == one["id"] + 11
            bad = await client.post("/admin/id-blocks/orders", json={"size": 0})
            assert bad.status_code == 422 and "size" in bad.json()["error"]
            assert (await client.post("/admin/id-blocks/nope", json={"size": 1})).status_code == 404


async def test_without_the_monolith_a_create_answers_503(tmp_path: Path) -> None:
    with service(tmp_path, "http://127.0.0.1:9") as new:
        async with httpx.AsyncClient(base_url=new.url) as client:
            reply = await client.post("/api/orders", json={"customer": "a", "item": "b"})
    assert reply.status_code == 503 and "no order id available" in reply.json()["error"]


async def test_why_not_a_disjoint_range(tmp_path: Path) -> None:
    """The collision ids.py avoids: an id above the monolith's sequence, written with its
    id, drags SQLite's sequence along, and the monolith's next order takes the id a
    service counting up from its own range would hand out next."""
    order = {"customer": "s", "item": "x", "created_at": "t", "updated_at": "t"}
    with monolith(tmp_path) as legacy:
        async with httpx.AsyncClient(base_url=legacy.url) as client:
            sync = {"x-strangler-origin": "reverse-sync"}
            await client.put("/api/orders/1000000", json=order, headers=sync)
            own = (await client.post("/api/orders", json={"customer": "l", "item": "y"})).json()
    assert own["id"] == 1000001


async def test_closed_writes_answer_503_and_change_nothing(tmp_path: Path) -> None:
    with monolith(tmp_path) as legacy, service(tmp_path, legacy.url) as new:
        async with httpx.AsyncClient(base_url=new.url) as client:
            made = (await client.post("/api/orders", json={"customer": "a", "item": "b"})).json()
            closed = await client.post("/admin/writes", json={"open": False})
            assert closed.json() == {"open": False}
            refused = await client.patch(f"/api/orders/{made['id']}", json={"status": "x"})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "closed" in refused.json()["error"]
            assert (await client.post("/api/orders", json={"item": "b"})).status_code == 503
            dry = await client.patch(
                f"/api/orders/{made['id']}",
                json={"status": "x"},
                headers={"x-strangler-dry-run": "1"},
            )
            assert dry.status_code == 200  # dry runs still answer
            assert (await client.post("/admin/writes", json={"open": "yes"})).status_code == 422
            assert (await client.post("/admin/writes", json={"open": True})).json() == {
                "open": True
            }
            assert (await client.get("/admin/writes")).json() == {"open": True}
            done = await client.patch(f"/api/orders/{made['id']}", json={"status": "y"})
            assert done.status_code == 200
    store = open_event_store(f"sqlite:///{tmp_path}/events.db")
    try:
        events = await store.read_all()
    finally:
        await store.close()
    assert [e.type for e in events] == ["OrderCreated", "OrderUpdated"]
    assert events[1].data["response"]["status"] == "y"


def test_captured_writes_become_the_aggregates_events() -> None:
    order = {**ORDER, "id": 3}
    gateway = Event("c1", "OrderCreated", "order", "3", {"request": {}, "response": order})
    gateway = replace(gateway, metadata={"source": "gateway"})
    new = translate(gateway)
    assert new is not None and (new.type, new.data) == (
        "OrderCreated",
        {"request": {}, "response": order},
    )
    assert new.id == imported_id("c1") == translate(gateway).id  # type: ignore[union-attr]
    assert new.metadata == {"source": "gateway", "causation_id": "c1"}
    trigger = Event("c2", "OrderUpdated", "order", "3", {"row": order, "before": order})
    assert translate(trigger).data == {"request": None, "response": order}  # type: ignore[union-attr]
    assert translate(Event("c3", "OrderDeleted", "order", "3")).data == {}  # type: ignore[union-attr]
    mine = replace(gateway, metadata={"source": "order-service"})
    assert translate(mine) is None  # the service's own: already stored
    with pytest.raises(ValueError, match="payload has no order"):
        translate(Event("c4", "OrderCreated", "order", "3", {"request": {}}))
