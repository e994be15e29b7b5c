"""The order service's write API: the monolith's order writes, decided by the event-sourced
:class:`~examples.order_service.order.Order` and stored in the service's event store.

    POST   /api/orders        create -> 201 with the order (id from examples/order_service/ids.py)
    PUT    /api/orders/{id}   customer and item required -> 200 with the order
    PATCH  /api/orders/{id}   some fields -> 200 with the order
    DELETE /api/orders/{id}   -> 204

Status codes and bodies are the monolith's: 422 ``{"error": ...}`` for a body it
refuses (checked before the order is looked up), 404 ``{"error": "order N not found"}``.
A create that cannot get an id answers 503; a command that keeps losing to concurrent
writers answers 409.

Dry run.  A request carrying ``x-strangler-dry-run`` (the gateway's mirror marks the
writes it shadows; see shadow/mirror.py) or ``x-strangler-shadow`` is decided against the
aggregate as stored -- validation, existence, the new state -- and answered as it
would be, but nothing is stored and no id is taken.  This holds whatever route
brought the request: a marked request is never committed, even as a primary.

Closed writes.  While a cut-over or a rollback waits for the two systems to agree, the
service's writes are closed (``POST /admin/writes {"open": false}``): a write that would
be committed answers 503 ``{"error": ...}`` with ``Retry-After: 1`` and changes nothing
(so a client may retry it safely); dry runs still answer.  ``GET /admin/writes`` says
whether they are open.

Saved events carry ``{"source": "order-service"}`` in their metadata (with the
request id when the request has one), which is how the import of captured writes skips
them and the reverse sync picks them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.order_service.ids import IdBlocks, IdClaimError
from examples.order_service.order import Order, OrderError, validate
from strangler_events.repository import CommandConflict, Repository, handle

DRY_RUN_HEADERS: Final = ("x-strangler-dry-run", "x-strangler-shadow")
SOURCE: Final = "order-service"

Command = Callable[[Order], object]


def now() -> str:
    """A timestamp as the monolith writes them."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def dry_run(headers: Mapping[str, str]) -> bool:
    """Whether a request is marked as one that must not be committed."""
    return any(name in headers for name in DRY_RUN_HEADERS)


@dataclass
class Writes:
    """The write endpoints over one repository and one id source."""

    orders: Repository[Order]
    ids: IdBlocks
    clock: Callable[[], str] = now
    open: bool = True

    def routes(self) -> list[Route]:
        return [
            Route("/api/orders", self.create, methods=["POST"]),
            Route("/api/orders/{id:int}", self.change, methods=["PUT", "PATCH", "DELETE"]),
            Route("/admin/writes", self.gate, methods=["GET", "POST"]),
        ]

    async def gate(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            if not isinstance(body, dict) or not isinstance(body.get("open"), bool):
                return JSONResponse({"error": 'expected {"open": true|false}'}, status_code=422)
            self.open = body["open"]
        return JSONResponse({"open": self.open})

    def _closed(self, request: Request) -> Response | None:
        if self.open or dry_run(request.headers):
            return None
        return JSONResponse(
            {"error": "order writes are closed on this service (a cut-over is in progress)"},
            status_code=503,
            headers={"retry-after": "1"},
        )

    async def create(self, request: Request) -> Response:
        closed = self._closed(request)
        if closed is not None:
            return closed
        body = await _body(request)
        try:
            validate(body, partial=False)
        except OrderError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        dry = dry_run(request.headers)
        try:
            ident = await (self.ids.peek() if dry else self.ids.next())
        except IdClaimError as exc:
            return JSONResponse({"error": f"no order id available: {exc}"}, status_code=503)
        stamp = self.clock()
        return await self._run(request, str(ident), lambda o: o.create(body, stamp), 201)

    async def change(self, request: Request) -> Response:
        closed = self._closed(request)
        if closed is not None:
            return closed
        ident = str(request.path_params["id"])
        if request.method == "DELETE":
            return await self._run(request, ident, lambda o: o.delete(), 204)
        body = await _body(request)
        partial = request.method == "PATCH"
        stamp = self.clock()
        return await self._run(request, ident, lambda o: o.update(body, stamp, partial), 200)

    async def _run(self, request: Request, ident: str, command: Command, status: int) -> Response:
        try:
            if dry_run(request.headers):
                order = await self.orders.load(ident)
                command(order)  # decided, never saved
            else:
                order = (
                    await handle(self.orders, ident, command, metadata=_meta(request))
                ).aggregate
        except OrderError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        except CommandConflict as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(order.order, status_code=status)


def _meta(request: Request) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": SOURCE}
    request_id = request.headers.get("x-request-id")
    if request_id:
        meta["request_id"] = request_id
    return meta


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None
