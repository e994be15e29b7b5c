"""The order service's HTTP side: the same read API as the monolith, from the read model,
plus repair endpoints for reconciliation and the consumer's metrics.

    GET  /api/orders              all orders, by id (the monolith's JSON shape)
    GET  /api/orders/{id}         one order, 404 {"error": "order N not found"}
    POST /admin/reproject/{id}    rebuild one order from its events
    POST /admin/rebuild           rebuild the whole read model (consumer paused)
    GET  /metrics                 consumer metrics (Prometheus text)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from events.consumer import ConsumerMetrics, ResilientConsumer
from events.database import open_database
from examples.order_service.projection import all_orders, one_order, orders_projection
from gateway.metrics import render
from gateway.tasks import spawn

log = logging.getLogger("order-service")


def create_app(
    database_url: str,
    bootstrap: str,
    topic: str = "events.order",
    delays: tuple[float, ...] = (0.2, 1.0, 5.0),
) -> Starlette:
    database = open_database(database_url)
    projection = orders_projection(database)
    metrics = ConsumerMetrics()
    state: dict[str, ResilientConsumer | asyncio.Task[None] | None] = {"consumer": None}

    async def start_consumer() -> None:
        consumer = projection.consumer(bootstrap, [topic], delays=delays, metrics=metrics)
        await consumer.start()
        state["consumer"] = consumer
        state["task"] = spawn(consumer.run(), name="order-service-consumer")

    async def stop_consumer() -> None:
        consumer, task = state.get("consumer"), state.get("task")
        if isinstance(consumer, ResilientConsumer):
            await consumer.stop()
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        state["consumer"] = state["task"] = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await projection.init()
        await start_consumer()
        try:
            yield
        finally:
            await stop_consumer()
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
        await stop_consumer()
        try:
            count = await projection.rebuild(bootstrap, [topic])
        finally:
            await start_consumer()
        return JSONResponse({"events": count})

    async def metrics_endpoint(request: Request) -> Response:
        return PlainTextResponse(render(metrics.registry.snapshot()))

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
