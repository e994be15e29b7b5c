"""Helpers for the tests of moving order writes: the monolith, the order service (its read
model, event store and outbox on one PostgreSQL database), the relay and a real gateway,
with routes that send order writes to the monolith (shadowed as dry runs) or to the
service."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from examples.legacy_monolith.app import create_app as legacy_app
from examples.order_service.app import create_app
from gateway.cli import main
from gateway.config import parse
from gateway.proxy import Generation
from gateway.proxy.proxy import Proxy
from strangler_events.eventstore import RecordedEvent, open_event_store
from tests.eventually import eventually
from tests.gateway.support import gateway
from tests.harness import UvicornThread

#: the variable the routes name for the reverse sync's origin token (proxy.origin_token_env)
ORIGIN_TOKEN_ENV = "STRANGLER_TEST_ORIGIN_TOKEN"
SHADOW_IGNORE = '["/id", "/created_at", "/updated_at", "header:date"]'
CAPTURE = """\
    capture:
      - {method: POST, path: /api/orders, event: OrderCreated, aggregate: order,
          id: "response:/id"}
      - {method: PUT, path: "/api/orders/{id}", event: OrderUpdated, aggregate: order,
          id: "path:id", id_type: integer}
      - {method: PATCH, path: "/api/orders/{id}", event: OrderUpdated, aggregate: order,
          id: "path:id", id_type: integer}
      - {method: DELETE, path: "/api/orders/{id}", event: OrderDeleted, aggregate: order,
          id: "path:id", id_type: integer, payload: none}
"""


def write_routes(
    legacy: str,
    service: str,
    dsn: str,
    bootstrap: str,
    topics: str,
    tmp: Path,
    writer: str,
    shadow_writes: bool = True,
) -> str:
    """Order writes go to ``writer`` (``legacy``: captured, and shadowed to the service as
    dry runs; ``order-service``: the cut-over).  Writes marked as the reverse sync's
    (``x-strangler-origin``) or as a legacy job's (``x-legacy-job``) always go to the
    monolith, under the same capture rules; the origin header passes the gateway only with
    the token in ``ORIGIN_TOKEN_ENV``."""
    shadow = (
        "    shadow: {backend: order-service, percent: 100, methods: [POST, PUT, PATCH, DELETE],\n"
        f"             allow_writes: true, ignore: {SHADOW_IGNORE}}}\n"
        if writer == "legacy" and shadow_writes
        else ""
    )
    to_legacy = "".join(
        f"  - name: {name}\n"
        f"    match: {{prefix: /api/orders, headers: {{{header}: {{present: true}}}}}}\n"
        f"    split: {{legacy: 100}}\n{CAPTURE}"
        for name, header in (("orders-sync", "x-strangler-origin"), ("jobs", "x-legacy-job"))
    )
    return f"""\
version: 1
proxy: {{origin_token_env: {ORIGIN_TOKEN_ENV}}}
backends:
  legacy: {{url: "{legacy}", legacy: true}}
  order-service: {{url: "{service}"}}
routes:
  - name: orders-reads
    match: {{prefix: /api/orders, methods: [GET]}}
    split: {{legacy: 100}}
{to_legacy}  - name: orders-writes
    match: {{prefix: /api/orders}}
    split: {{{writer}: 100}}
{shadow}{CAPTURE}outbox: {{url: "{dsn}", spool: "{tmp}/spool"}}
kafka: {{bootstrap: "{bootstrap}", topic: "{topics}"}}
shadow_store: {{url: "sqlite:///{tmp}/shadow.db"}}
"""


@dataclass
class Writes:
    gateway_port: int
    legacy: str
    service: str
    dsn: str
    bootstrap: str
    topics: str  # the topic template
    tmp: Path
    proxy: Proxy
    origin_token: str  # what the reverse sync sends to write through the gateway

    @property
    def topic(self) -> str:
        return self.topics.format(aggregate="order")

    def routes(self, writer: str, shadow_writes: bool = True) -> str:
        return write_routes(
            self.legacy,
            self.service,
            self.dsn,
            self.bootstrap,
            self.topics,
            self.tmp,
            writer,
            shadow_writes,
        )

    def reload(self, writer: str, shadow_writes: bool = True) -> None:
        """What a routes.yaml change and a reload do to the running proxy: new requests
        take the new routes, requests in flight finish on the old ones."""
        self.proxy.swap(Generation(parse(self.routes(writer, shadow_writes))))


@contextmanager
def relay(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "outbox", "relay", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)


@contextmanager
def moving_writes(
    tmp: Path,
    dsn: str,
    bootstrap: str,
    writer: str = "legacy",
    publish: bool = False,
    legacy_db: str | None = None,
    shadow_writes: bool = True,
) -> Iterator[Writes]:
    """Monolith (on ``legacy_db``, default a SQLite file), order service (all on ``dsn``,
    its events published through the outbox there with ``publish``), relay and gateway."""
    topics = f"w{uuid.uuid4().hex[:8]}.{{aggregate}}"
    token = secrets.token_urlsafe(16)
    with (
        mock.patch.dict(os.environ, {ORIGIN_TOKEN_ENV: token}),
        UvicornThread(legacy_app(legacy_db or str(tmp / "legacy.db")), lifespan="on") as legacy,
    ):
        app = create_app(
            dsn, bootstrap, topics.format(aggregate="order"), legacy=legacy.url, publish=publish
        )
        placeholder = "http://127.0.0.1:1"
        text = write_routes(
            legacy.url, placeholder, dsn, bootstrap, topics, tmp, writer, shadow_writes
        )
        config = tmp / "routes.yaml"
        config.write_text(text)
        with ThreadPoolExecutor(1) as pool:  # (the caller's event loop runs in this thread)
            init = pool.submit(main, ["outbox", "init", "-c", str(config)])
            assert init.result() == 0  # the outbox table, which the service's appends use
        with UvicornThread(app, lifespan="on") as service:
            text = text.replace(placeholder, service.url)
            config.write_text(text)
            with gateway(text) as (server, proxy), relay(config):
                yield Writes(
                    server.port, legacy.url, service.url, dsn, bootstrap, topics, tmp, proxy, token
                )


async def stored_events(dsn: str) -> list[RecordedEvent]:
    store = open_event_store(dsn)
    try:
        return await store.read_all(limit=100_000)
    finally:
        await store.close()


async def imported(dsn: str, count: int, timeout: float = 60.0) -> list[RecordedEvent]:
    """The service's stored events once there are at least ``count``."""

    async def enough() -> list[RecordedEvent]:
        events = await stored_events(dsn)
        if len(events) < count:
            raise AssertionError(f"{len(events)} of {count} events in the service's store")
        return events

    return await eventually(enough, timeout=timeout, interval=0.2, message=f"{count} events stored")


async def send(
    port: int, method: str, path: str, body: Any = None, **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return await client.request(method, path, json=body, headers=headers)
