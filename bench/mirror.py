#!/usr/bin/env python3
"""What one mirrored sample costs a gateway worker, and what one shed sample costs.

    .venv/bin/python bench/mirror.py          # SAMPLES=20000 ROUNDS=3

Shadowing's cost to the primary traffic is two numbers times two rates: every request
of a shadowed route asks the mirror for a lane (nearly all of them shed under load),
and the lane mirrors ``shadow.concurrency`` samples per shadow-backend round trip
(16 per worker at the defaults: 80 a second to a 200 ms backend).  ``bench/shadow.py``
measures the sum under wrk; this script measures the two parts alone, in one process:

* **shed**: ``Mirror.lane`` on a full lane (the request's whole share), per call;
* **mirrored**: the CPU time of the worker's side of a mirrored sample (queue, drain
  task, the call to the shadow backend over the mirror's pooled client, reading the
  body, the comparison, the result and its share of the batched write to a SQLite
  result store), per sample, with the store and without.  The shadow backend is
  ``bench/shadow.py --slow-backend`` answering at once, in its own process, so its CPU
  is not counted; the samples are kept coming so that the lane is never idle.

The figures are per worker; at R requests a second per worker, shadowing costs about
``shed + rate x mirrored / R`` of CPU per request.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import BODY, HOST, free_port, stop, wait_http  # noqa: E402
from gateway.config import Route  # noqa: E402
from gateway.config.loader import parse  # noqa: E402
from gateway.http.exchange import Sample  # noqa: E402
from gateway.metrics.registry import Registry  # noqa: E402
from shadow.mirror import Mirror  # noqa: E402
from shadow.store import Result, ResultStore, open_store  # noqa: E402

SAMPLES = int(os.environ.get("SAMPLES", "20000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHED_CALLS = 1_000_000
REQUEST_HEADERS = [
    (b"host", b"127.0.0.1"),
    (b"user-agent", b"wrk"),
    (b"x-user-id", b"bench-user-7"),
    (b"x-request-id", b"4f1c2e3a7b4d4c1e8a2b1234567890ab"),
    (b"x-forwarded-for", b"127.0.0.1"),
]
RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", b"%d" % len(BODY)),
    (b"server", b"nginx"),
    (b"date", b"Wed, 02 Dec 2026 10:00:00 GMT"),
]


class Discard:
    """A result store that keeps nothing: the mirror's side of a sample without the write."""

    url = "discard://"

    async def init(self) -> None:
        pass

    async def add(self, results: Sequence[Result]) -> None:
        pass

    async def results(self, since: float = 0.0, route: str | None = None) -> list[Result]:
        return []

    async def checkpoint(self) -> None:
        pass

    async def close(self) -> None:
        pass


def mirror_to(shadow_port: int, store: ResultStore) -> tuple[Route, Mirror]:
    """The shadowed route, and a mirror of its own writing to ``store``."""
    config = parse(f"""\
version: 1
backends:
  legacy: {{url: "http://{HOST}:1", legacy: true}}
  new: {{url: "http://{HOST}:{shadow_port}"}}
routes:
  - name: api
    match: {{prefix: /api}}
    split: {{legacy: 100}}
    shadow: {{backend: new, percent: 100}}
""")
    return config.routes[0], Mirror(config.backends, Registry(), store)


def sample() -> Sample:
    return Sample(
        "api", "GET", "/api/x", b"/api/x", REQUEST_HEADERS, b"", "legacy", 200,
        RESPONSE_HEADERS, BODY.encode(), 0.001, "4f1c2e3a7b4d4c1e8a2b1234567890ab", time.time(),
    )  # fmt: skip


def shed_ns(route: Route, mirror: Mirror) -> float:
    lane = mirror.lane(route, "GET", "/api/x", "legacy", True)
    assert lane is not None
    lane.waiting = lane.capacity  # full: every call from now on is shed
    ask = mirror.lane
    start = time.perf_counter()
    for _ in range(SHED_CALLS):
        ask(route, "GET", "/api/x", "legacy", True)
    took = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(SHED_CALLS):
        pass
    empty = time.perf_counter() - start
    lane.waiting = 0
    return (took - empty) / SHED_CALLS * 1e9


async def mirrored_us(route: Route, mirror: Mirror) -> float:
    """CPU µs of this process per mirrored sample, over SAMPLES samples."""
    mirror.start()
    cpu = time.process_time()
    for _ in range(SAMPLES):
        lane = mirror.lane(route, "GET", "/api/x", "legacy", True)
        while lane is None:  # full: wait (not spin) for a drain to take one
            await asyncio.sleep(0.001)
            lane = mirror.lane(route, "GET", "/api/x", "legacy", True)
        lane.submit(sample())
    while any(lane.waiting for lane in mirror.lanes.values()):
        await asyncio.sleep(0.001)
    await mirror.flush()
    took = time.process_time() - cpu
    await mirror.stop()
    return took / SAMPLES * 1e6


def main() -> int:
    import uvloop

    port = free_port()
    backend = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "shadow.py"), "--slow-backend", str(port)],
        env={**os.environ, "SHADOW_DELAY": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # as bench/run.py's start(): stop() signals the group
    )
    shed: list[float] = []
    stored: list[float] = []
    unstored: list[float] = []
    results = Path(tempfile.mkdtemp(prefix="strangler-mirror-bench-"))
    try:
        wait_http(f"http://{HOST}:{port}/api/x")
        for n in range(ROUNDS):
            shed.append(shed_ns(*mirror_to(port, Discard())))
            store = open_store(f"sqlite:///{results}/{n}.db")
            stored.append(uvloop.run(mirrored_us(*mirror_to(port, store))))
            unstored.append(uvloop.run(mirrored_us(*mirror_to(port, Discard()))))
    finally:
        stop(backend)
        shutil.rmtree(results, ignore_errors=True)
    print(f"\n# strangler mirror cost {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print(f"{ROUNDS} rounds; medians, and every round in the last column.\n")
    print("| part | cost | rounds |")
    print("|---|---|---|")
    rows = [
        ("shed sample (`Mirror.lane` on a full lane)", shed, "ns"),
        ("mirrored sample, SQLite result store", stored, "µs CPU"),
        ("mirrored sample, results discarded", unstored, "µs CPU"),
    ]
    for what, values, unit in rows:
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {what} | {statistics.median(values):.0f} {unit} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
