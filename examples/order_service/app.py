"""The order service's HTTP side: the same read API as the monolith, from the read model,
plus repair endpoints for reconciliation and the consumer's metrics.

    GET  /api/orders              all orders, by id (the monolith's JSON shape)
    GET  /api/orders/{id}         one order, 404 {"error": "order N not found"}
    POST /admin/reproject/{id}    rebuild one order from its events
    POST /admin/rebuild           rebuild the whole read model (consumer paused)
    GET  /metrics                 consumer metrics (Prometheus text)

``on_position_mismatch`` is the consumer's policy when its stored position does not fit
the topic's log (recreated, or events deleted unread): ``stop`` (the consumer stops
with an error naming the partition and offsets; reads keep answering from the read
model as it was) or ``rebuild`` (the read model is emptied and rebuilt from the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.order_service.projection import all_orders, one_order, orders_projection
from gateway.tasks import spawn
from strangler_events.consumer import ConsumerMetrics, ResilientConsumer
from strangler_events.database import open_database
from strangler_events.mismatch import PositionMismatch
from strangler_events.projection import Projection

log = logging.getLogger("order-service")


class ConsumerSlot:
    """The projection's consumer and its task, started and stopped (around a rebuild)
    together; one set of metrics across restarts."""

    def __init__(self, projection: Projection, bootstrap: str, topic: str, **options: Any):
        self.projection, self.bootstrap, self.topic = projection, bootstrap, topic
        self.metrics = ConsumerMetrics()
        self.options = {**options, "metrics": self.metrics}
        self.consumer: ResilientConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = self.projection.consumer(self.bootstrap, [self.topic], **self.options)
        await self.consumer.start()
        self.task = spawn(self.consumer.run(), name="order-service-consumer")

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


def create_app(
    database_url: str,
    bootstrap: str,
    topic: str = "events.order",
    delays: tuple[float, ...] = (0.2, 1.0, 5.0),
    on_position_mismatch: str = "stop",
) -> Starlette:
    database = open_database(database_url)
    projection = orders_projection(database)
    slot = ConsumerSlot(
        projection, bootstrap, topic, delays=delays, on_position_mismatch=on_position_mismatch
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await projection.init()
        await slot.start()
        try:
            yield
        finally:
            await slot.stop()
            await database.close()

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
        count = await projection.reproject(bootstrap, topic, str(ident))
        return JSONResponse({"id": ident, "events": count})

    async def rebuild(request: Request) -> Response:
        await slot.stop()
        try:
            count = await projection.rebuild(bootstrap, [topic])
        finally:
            await slot.start()
        return JSONResponse({"events": count})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(slot.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/orders", orders, methods=["GET"]),
            Route("/api/orders/{id:int}", order, methods=["GET"]),
            Route("/admin/reproject/{id:int}", reproject, methods=["POST"]),
            Route("/admin/rebuild", rebuild, methods=["POST"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
