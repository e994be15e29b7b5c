#!/usr/bin/env python3
"""What an idle keep-alive client connection costs a proxy worker in memory.

    python bench/memory.py                  # strangler-2w and nginx-2w, 2,000 connections
    IDLE_CONNS=5000 python bench/memory.py

:func:`measure` opens ``IDLE_CONNS`` client connections to a proxy, sends one request on
each (so that every connection has served a request and sits in keep-alive, as a browser's
or a pool's do) and keeps them open; it reads each worker's resident memory (VmRSS) before
and after, and counts the connections each worker holds (its sockets in /proc), so that
the figure is the RSS delta per worker divided by that worker's connections.  Before the
baseline, one request on each of ``WARM_CONNS`` connections warms the worker (its backend
pool, its caches) so that what is measured is the connections' own cost.

bench/run.py reports the same figure beside its throughput table (the target: under
20 KiB per connection).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "2000"))
WARM_CONNS = 100
REQUEST = b"GET /api/x HTTP/1.1\r\nHost: bench\r\nx-user-id: bench-user-7\r\n\r\n"


@dataclass
class Memory:
    connections: int
    per_worker: dict[int, tuple[int, int]]  # pid: (RSS delta KiB, connections it holds)

    @property
    def kib_per_connection(self) -> float:
        """The workers' RSS delta over the connections they hold."""
        held = sum(c for _, c in self.per_worker.values())
        return sum(d for d, _ in self.per_worker.values()) / held if held else 0.0

    def describe(self) -> str:
        workers = ", ".join(
            f"{delta:,} KiB / {held} conns" for delta, held in self.per_worker.values()
        )
        return f"{self.kib_per_connection:.1f} KiB per connection ({workers})"


def workers_of(pid: int) -> list[int]:
    """The worker processes under a proxy's main process (its children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


async def _one_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return reader, writer


async def _open(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []
    limit = asyncio.Semaphore(100)

    async def one() -> None:
        async with limit:
            writers.append((await _one_request(port))[1])

    await asyncio.gather(*(one() for _ in range(count)))
    return writers


async def _settled(pids: list[int]) -> dict[int, int]:
    """Each worker's RSS once it stops changing (or after two seconds)."""
    last = {p: rss_kib(p) for p in pids}
    for _ in range(20):
        await asyncio.sleep(0.1)
        now = {p: rss_kib(p) for p in pids}
        if now == last:
            break
        last = now
    return last


async def _measure(port: int, workers: list[int], count: int) -> Memory:
    for writer in await _open(port, WARM_CONNS):
        writer.close()
    before = await _settled(workers)
    held_before = {p: sockets(p) for p in workers}
    writers = await _open(port, count)
    try:
        after = await _settled(workers)
        held = {p: sockets(p) - held_before[p] for p in workers}
    finally:
        for writer in writers:
            writer.close()
    return Memory(count, {p: (after[p] - before[p], held[p]) for p in workers})


def measure(port: int, main_pid: int, count: int = IDLE_CONNS) -> Memory:
    """Open ``count`` idle keep-alive connections to the proxy on ``port`` whose main
    process is ``main_pid``; what they cost its workers."""
    return asyncio.run(_measure(port, workers_of(main_pid), count))


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.run import (
        BODY,
        free_port,
        gateway_conf,
        nginx_conf,
        raise_fd_limit,
        start,
        stop,
        wait_http,
    )

    if shutil.which("nginx") is None:
        print("nginx is missing: run bench/setup.sh", file=sys.stderr)
        return 2
    raise_fd_limit()
    strangler = shutil.which("strangler") or str(Path(sys.executable).parent / "strangler")
    run = Path(tempfile.mkdtemp(prefix="strangler-memory-"))
    up_port, port, admin, nginx_port = free_port(), free_port(), free_port(), free_port()
    procs = [start(["nginx", "-c", str(nginx_conf(run, "upstream", 1, up_port, BODY, None))])]
    try:
        wait_http(f"http://{HOST}:{up_port}/api/x")
        conf = gateway_conf(run, port, admin, up_port)
        procs.append(start([strangler, "run", "-c", str(conf), "--workers", "2"]))
        wait_http(f"http://{HOST}:{admin}/readyz")
        proxy = nginx_conf(run, "proxy", 2, nginx_port, None, up_port)
        procs.append(start(["nginx", "-c", str(proxy)]))
        wait_http(f"http://{HOST}:{nginx_port}/api/x")
        time.sleep(1)  # let the workers finish starting before the baseline
        print(f"{IDLE_CONNS:,} idle keep-alive connections, RSS delta per worker:")
        print(f"- strangler-2w: {measure(port, procs[1].pid).describe()}")
        print(f"- nginx-2w: {measure(nginx_port, procs[2].pid).describe()}")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
