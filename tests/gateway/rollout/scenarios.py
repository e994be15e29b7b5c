"""Test support for the rollout scenarios: twin JSON backends that differ only where a
scenario says (latency, a wrong field), slow paced traffic, and the stores of a run."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.eventually import wait_until
from tests.gateway.rollout.test_driver import status
from tests.harness import UvicornThread


def order_app(delay_ms: float = 0.0, wrong_every: int = 0) -> Any:
    """A backend answering the same order JSON as its twin; after ``delay_ms``, and with a
    wrong ``total`` in every ``wrong_every``-th answer when set."""
    seen = [0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen[0] += 1
        wrong = wrong_every and seen[0] % wrong_every == 0
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        body = json.dumps({"id": 7, "status": "shipped", "total": 999 if wrong else 100})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})

    return app


@contextmanager
def two_versions(legacy: Any, new: Any) -> Iterator[dict[str, str]]:
    with UvicornThread(legacy) as old, UvicornThread(new) as fresh:
        yield {"legacy": old.url, "v2": fresh.url}


def rolled_back(admin: str) -> dict[str, Any]:
    return wait_until(
        lambda: (s := status(admin))["phase"] == "rolled_back" and s,
        timeout=30,
        interval=0.2,
        message="the rollout to be rolled back",
    )


def stores(tmp: Path) -> str:
    return (
        f"rollout_store: {{url: 'sqlite:///{tmp}/rollout.db'}}\n"
        f"shadow_store: {{url: 'sqlite:///{tmp}/shadow.db'}}\n"
    )


@contextmanager
def trickle(url: str, paths: list[str], per_second: float) -> Iterator[None]:
    """Each path requested about ``per_second`` times a second while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.wait(1 / per_second):
                for path in paths:
                    client.get(path)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def rollout_of(admin: str, route: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{admin}/admin/rollout/{route}").json()
    return answer
