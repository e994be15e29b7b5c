"""The soak benchmark's traffic: mixed order requests through the gateway at a steady
rate from a bounded number of clients, tallied as they come back (what was sent, what
succeeded, every failure, the request id of every acknowledged write)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from typing import Any

from bench.run import HOST
from bench.soak_tally import Failure
from gateway.http.upstream import PooledTransport, UpstreamError, UpstreamRequest

LIVE_ORDERS = 200  # creates turn into deletes past this many live orders
MIX = {"create": 20, "update": 25, "get": 45, "list": 5}
EXPECTED = {"create": 201, "update": 200, "get": 200, "list": 200, "delete": 204}
WRITES = frozenset({"create", "update", "delete"})


class Load:
    """Mixed order traffic at about ``rate`` requests/s from ``clients`` concurrent clients,
    tallied as it goes: what was sent, what succeeded, every failure, and the request id
    of every acknowledged write."""

    def __init__(self, port: int, rate: float, clients: int, deadline: float) -> None:
        self.port, self.rate, self.clients, self.deadline = port, rate, clients, deadline
        self.transport = PooledTransport()
        self.rng = random.Random(7)
        self.tag = f"{os.getpid()}-{int(time.time())}"
        self.idle: list[int] = []  # live orders no client is using right now
        self.live = 0
        self.sent = self.ok = self.ticket = 0
        self.by_op: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.acknowledged: list[str] = []
        self.t0 = time.monotonic()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.clients):
                    group.create_task(self._client())
        finally:
            await self.transport.aclose()

    async def _client(self) -> None:
        while True:
            now = time.monotonic()
            # Paced from the start; after a stall, at most a second's worth is caught up.
            if self.t0 + self.ticket / self.rate < now - 1.0:
                self.t0 = now - 1.0 - self.ticket / self.rate
            at = self.t0 + self.ticket / self.rate
            self.ticket += 1
            if at >= self.deadline:
                return
            if at > now:
                await asyncio.sleep(at - now)
            await self._one()

    def _pick(self) -> str:
        op = self.rng.choices(list(MIX), list(MIX.values()))[0]
        if op in ("update", "get") and not self.idle:
            op = "create"
        if op == "create" and self.live >= LIVE_ORDERS and self.idle:
            op = "delete"
        return op

    async def _one(self) -> None:
        op = self._pick()
        if op == "list":
            await self._call(op, b"GET", b"/api/orders")
        elif op == "create":
            self.live += 1
            payload = {"customer": f"c{self.sent}", "item": "book", "quantity": 1}
            data = await self._call(op, b"POST", b"/api/orders", payload)
            if data is None:
                self.live -= 1  # it may exist all the same: then it is never touched again
            else:
                self.idle.append(int(json.loads(data)["id"]))
        else:
            ident = self.idle.pop(self.rng.randrange(len(self.idle)))
            target = b"/api/orders/%d" % ident
            method = {"update": b"PATCH", "get": b"GET", "delete": b"DELETE"}[op]
            change = {"quantity": self.rng.randint(1, 99)} if op == "update" else None
            await self._call(op, method, target, change)
            if op == "delete":
                self.live -= 1  # gone, or in doubt: either way no longer used
            else:
                self.idle.append(ident)

    async def _call(
        self, op: str, method: bytes, target: bytes, payload: dict[str, Any] | None = None
    ) -> bytes | None:
        """Send one request; the body when it got the status ``op`` expects, else None."""
        request_id = f"soak-{self.tag}-{self.sent}"
        self.sent += 1
        self.by_op[op] += 1
        headers = [(b"host", b"soak"), (b"x-request-id", request_id.encode())]
        body = b""
        if payload is not None:
            body = json.dumps(payload).encode()
            headers.append((b"content-type", b"application/json"))
        try:
            request = UpstreamRequest(method, target, headers, body)
            response = await self.transport.send(HOST, self.port, request, 5, 30, self.clients)
            data = b"".join([c async for c in response.chunks()])
        except (UpstreamError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            self.failures.append(Failure(time.monotonic(), op, None, None, detail))
            return None
        if response.status != EXPECTED[op]:
            text = data.decode("utf-8", "replace")
            failure = Failure(time.monotonic(), op, response.status, _backend(data), text)
            self.failures.append(failure)
            return None
        self.ok += 1
        if op in WRITES:
            self.acknowledged.append(request_id)
        return data


def _backend(body: bytes) -> str | None:
    """The backend a gateway-made JSON error names, if any."""
    try:
        named = json.loads(body).get("backend")
    except (ValueError, AttributeError):
        return None
    return named if isinstance(named, str) else None
