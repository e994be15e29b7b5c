"""The order service's HTTP side: the same read API as the monolith, from the read model,
the monolith's write API on the event-sourced Order (:mod:`examples.order_service.writes`),
plus repair endpoints for reconciliation and the consumer's metrics.

    GET  /api/orders              all orders, by id (the monolith's JSON shape)
    GET  /api/orders/{id}         one order, 404 {"error": "order N not found"}
    POST, PUT, PATCH, DELETE      the writes (see writes.py), into the event store
    GET, POST /admin/writes       whether the writes are open; open or close them
    POST /admin/reproject/{id}    rebuild one order from its events
    POST /admin/rebuild           rebuild the whole read model (consumer paused)
    GET  /metrics                 consumer metrics (Prometheus text)

``on_position_mismatch`` is the consumer's policy when its stored position does not fit
the topic's log (recreated, or events deleted unread): ``stop`` (the consumer stops
with an error naming the partition and offsets; reads keep answering from the read
model as it was) or ``rebuild`` (the read model is emptied and rebuilt from the start).

The writes' event store is ``events_url`` (default: the read model's database); with
``publish`` its appends also go into that database's outbox (``strangler_outbox``, which
``strangler outbox init`` creates) for the relay to publish to the ``order`` topic.  New
order ids are claimed in blocks from the monolith at ``legacy`` (see ids.py).  Without a
``bootstrap`` no consumer runs (the read model stays as it is).  With one, a second
consumer imports the monolith's captured order writes into the event store
(:mod:`examples.order_service.imports`), so the aggregates know the monolith's orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.order_service.ids import DEFAULT_BLOCK, IdBlocks, IdClaimError, http_claim
from examples.order_service.imports import order_import
from examples.order_service.order import Order
from examples.order_service.projection import all_orders, one_order, orders_projection
from examples.order_service.writes import Writes
from gateway.tasks import spawn
from strangler_events.consumer import ConsumerMetrics, ResilientConsumer
from strangler_events.database import Database, open_database
from strangler_events.eventstore import EventStore, OutboxSpec, open_event_store
from strangler_events.mismatch import PositionMismatch
from strangler_events.projection import Projection
from strangler_events.repository import Repository

log = logging.getLogger("order-service")


class ConsumerSlot:
    """The projection's consumer and its task, started and stopped (around a rebuild)
    together; one set of metrics across restarts."""

    def __init__(
        self,
        projection: Projection,
        bootstrap: str,
        topic: str,
        metrics: ConsumerMetrics | None = None,
        **options: Any,
    ):
        self.projection, self.bootstrap, self.topic = projection, bootstrap, topic
        self.metrics = metrics or ConsumerMetrics()
        self.options = {**options, "metrics": self.metrics}
        self.consumer: ResilientConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = self.projection.consumer(self.bootstrap, [self.topic], **self.options)
        await self.consumer.start()
        self.task = spawn(self.consumer.run(), name=f"order-service:{self.projection.name}")

    async def stop(self) -> None:
        consumer, task, self.consumer, self.task = self.consumer, self.task, None, None
        if consumer is not None:
            await consumer.stop()
        if task is not None:
            task.cancel()
            # a consumer stopped by a position mismatch was logged when it stopped; the
            # rebuild endpoint is the way out of it, so stopping it here must not fail
            with contextlib.suppress(asyncio.CancelledError, PositionMismatch):
                await task


@dataclass
class Parts:
    """What the app starts and stops."""

    database: Database
    projection: Projection
    slot: ConsumerSlot
    importer: ConsumerSlot
    store: EventStore
    ids: IdBlocks
    bootstrap: str | None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.projection.init()
        await self.store.init()
        await self.ids.init()
        await self.importer.projection.init()
        # The consumers start in the background (each waits for the broker's metadata
        # first): the API answers at once, from the read model and the store as they are.
        both = _start(self.slot, self.importer) if self.bootstrap else _nothing()
        starting = spawn(both, name="order-service-consumers")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await starting
            await self.importer.stop()
            await self.slot.stop()
            await self.store.close()
            await self.database.close()


def _consumers(
    database: Database,
    store: EventStore,
    bootstrap: str,
    topic: str,
    delays: tuple[float, ...],
    on_position_mismatch: str,
) -> tuple[ConsumerSlot, ConsumerSlot]:
    """The read model's consumer and the import's, sharing one set of metrics."""
    projection = orders_projection(database)
    slot = ConsumerSlot(
        projection, bootstrap, topic, delays=delays, on_position_mismatch=on_position_mismatch
    )
    importer = ConsumerSlot(
        order_import(database, store), bootstrap, topic, slot.metrics, delays=delays
    )
    return slot, importer


async def _start(*slots: ConsumerSlot) -> None:
    await asyncio.gather(*(slot.start() for slot in slots))


async def _nothing() -> None:
    pass


async def _no_legacy(size: int) -> tuple[int, int]:
    raise IdClaimError("no monolith URL to claim order ids from (--legacy)")


def create_app(
    database_url: str,
    bootstrap: str | None,
    topic: str = "events.order",
    delays: tuple[float, ...] = (0.2, 1.0, 5.0),
    on_position_mismatch: str = "stop",
    *,
    legacy: str | None = None,
    events_url: str | None = None,
    publish: bool = False,
    id_block: int = DEFAULT_BLOCK,
    writes_open: bool = True,
) -> Starlette:
    database = open_database(database_url)
    store = open_event_store(events_url or database_url)
    slot, importer = _consumers(
        database, store, bootstrap or "", topic, delays, on_position_mismatch
    )
    ids = IdBlocks(database, http_claim(legacy) if legacy else _no_legacy, id_block)
    orders_repo = Repository(store, Order, "order", outbox=OutboxSpec("order") if publish else None)
    writes = Writes(orders_repo, ids, open=writes_open)
    parts = Parts(database, slot.projection, slot, importer, store, ids, bootstrap)

    async def orders(request: Request) -> Response:
        return JSONResponse(await all_orders(database))

    async def order(request: Request) -> Response:
        ident = int(request.path_params["id"])
        found = await one_order(database, ident)
        if found is None:
            return JSONResponse({"error": f"order {ident} not found"}, status_code=404)
        return JSONResponse(found)

    async def reproject(request: Request) -> Response:
        ident = request.path_params["id"]
        count = await slot.projection.reproject(slot.bootstrap, topic, str(ident))
        return JSONResponse({"id": ident, "events": count})

    async def rebuild(request: Request) -> Response:
        await slot.stop()
        try:
            count = await slot.projection.rebuild(slot.bootstrap, [topic])
        finally:
            await slot.start()
        return JSONResponse({"events": count})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(slot.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/orders", orders, methods=["GET"]),
            Route("/api/orders/{id:int}", order, methods=["GET"]),
            *writes.routes(),
            Route("/admin/reproject/{id:int}", reproject, methods=["POST"]),
            Route("/admin/rebuild", rebuild, methods=["POST"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=parts.lifespan,
    )
