"""Test support for several ``strangler run`` replicas of one rollout: traffic to each of
them, and what each one's admin API and metrics say about the rollout of route ``api``."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.eventually import wait_until
from tests.gateway.support import RunningGateway

DRIVING = re.compile(r'strangler_rollout_driving\{holder="([^"]+)"\} (\d+)')


@contextmanager
def traffic(*gateways: RunningGateway) -> Iterator[list[dict[str, int]]]:
    """Requests sent to every gateway while the block runs; per gateway, who answered."""
    served: list[dict[str, int]] = [{} for _ in gateways]
    stop = threading.Event()

    def loop(url: str, counts: dict[str, int]) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.is_set():
                name = client.get("/api/x").headers.get("x-strangler-backend", "?")
                counts[name] = counts.get(name, 0) + 1

    threads = [
        threading.Thread(target=loop, args=(gw.url, counts), daemon=True)
        for gw, counts in zip(gateways, served, strict=True)
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    try:
        yield served
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def status(gw: RunningGateway) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{gw.admin_url}/admin/rollout/api").json()
    return answer


def weight(gw: RunningGateway) -> int | None:
    found = re.search(r'strangler_rollout_weight\{route="api",backend="v2"\} (\d+)', gw.metrics())
    return int(found.group(1)) if found else None


def weight_is(gw: RunningGateway, expected: int) -> bool:
    return weight(gw) == expected


def driving(gw: RunningGateway) -> tuple[str, bool]:
    """This gateway's lease holder name and whether it drives now."""
    found = DRIVING.search(gw.metrics())
    assert found, "no strangler_rollout_driving metric"
    return found.group(1), found.group(2) == "1"


def one_driver(*gateways: RunningGateway) -> list[tuple[str, bool]] | None:
    """Every replica's holder and whether it drives, once exactly one of them does."""
    seen = [driving(gw) for gw in gateways]
    return seen if sum(leads for _, leads in seen) == 1 else None


def only_v2(gw: RunningGateway) -> bool:
    with httpx.Client(base_url=gw.url) as client:
        return {client.get("/api/x").headers["x-strangler-backend"] for _ in range(20)} == {"v2"}


def waiting_at(gw: RunningGateway, step_weight: int) -> dict[str, Any]:
    return wait_until(
        lambda: (s := status(gw))["phase"] == "waiting_for_approval" and s,
        timeout=20,
        interval=0.2,
        message=f"the rollout to wait for approval at {step_weight}",
    )
