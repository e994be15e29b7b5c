#!/usr/bin/env python3
"""Shadow benchmark: does mirroring to a slow backend cost the real traffic anything?

    make bench-shadow                # or: .venv/bin/python bench/shadow.py
    DURATION=3 REPS=2 make bench-shadow

In one run, against one upstream (nginx, 1 worker, 1 KiB JSON), wrk at 64
connections on ``GET /api/x``:

* ``nginx-2w``: nginx reverse proxy, 2 workers (reference);
* ``shadow-off``: ``strangler run --workers 2``, the route without a shadow block;
* ``shadow-100``: the same route shadowing 100% of requests to a backend that
  answers every request in 200 ms (a bare asyncio server in this script, about as
  lean as the nginx upstream; the CPU it takes from the same two CPUs is reported).

Runs are interleaved in alternating order (A B C C B A ...).  Bar: shadow-100 rps
>= 95% and p99 <= 110% of shadow-off; the report gives the ratio of the medians and
the median of the per-round ratios (each round pairs runs made minutes apart, so it
is the steadier figure on a shared machine), with every round shown.  Most samples are
shed (the lane holds ``concurrency`` + ``queue`` mirrored requests); the table
says how many were compared, errored and shed, from the gateway's metrics.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    BODY,
    CLK,
    CONNS,
    HOST,
    WARMUP,
    Entry,
    free_port,
    nginx_conf,
    start,
    stop,
    tree_ticks,
    wait_http,
    wrk,
)

DELAY = float(os.environ.get("SHADOW_DELAY", "0.2"))
# Many short rounds rather than a few long ones: this machine's speed drifts by 10% and
# more within a minute (10-second rounds' ratios ranged from 88% to 114% in one run), more
# than shadowing costs.  Pairs of 5-second runs are closer in time, and twenty rounds take
# as long as ten of 10 seconds.
DURATION = int(os.environ.get("DURATION", "5"))
REPS = int(os.environ.get("REPS", "20"))
HI = max(CONNS)


class _Slow(asyncio.Protocol):
    """One connection to the slow backend: every request is answered after DELAY seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        import httptools

        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.loop.call_later(DELAY, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(SLOW_RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


SLOW_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
    % (len(BODY), BODY.encode())
)


def slow_backend(port: int) -> None:
    """Answer every request with BODY after DELAY seconds (run in its own process).

    A bare asyncio protocol, as lean as the nginx upstream: the backend shares this
    machine's two CPUs with the gateway, and what it spends per mirrored request is no
    cost of shadowing (a real shadow backend runs elsewhere).  Its CPU is reported."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Slow(loop), HOST, port, backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


def gateway_conf(run: Path, name: str, port: int, admin: int, up: int, shadow: int) -> Path:
    block = (
        "    shadow: {backend: new, percent: 100, timeout: 2s}\n" if name == "shadow-100" else ""
    )
    conf = run / f"{name}.yaml"
    conf.write_text(f"""\
version: 1
listen: {HOST}:{port}
admin: {{listen: {HOST}:{admin}}}
backends:
  legacy: {{url: "http://{HOST}:{up}", legacy: true}}
  new: {{url: "http://{HOST}:{shadow}"}}
routes:
  - name: api
    match: {{prefix: /api}}
    split: {{legacy: 100}}
{block}shadow_store: {{url: "sqlite:///{run}/{name}-shadow.db"}}
""")
    return conf


def shadow_counts(admin: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://{HOST}:{admin}/metrics").read().decode()
    counts: dict[str, float] = {}
    for m in re.finditer(r'strangler_shadow_comparisons_total\{[^}]*result="(\w+)"\} (\S+)', text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + float(m.group(2))
    return counts


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--slow-backend":
        slow_backend(int(sys.argv[2]))
        return 0
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: run bench/setup.sh", file=sys.stderr)
            return 2
    strangler = shutil.which("strangler") or str(Path(sys.executable).parent / "strangler")
    run = Path(tempfile.mkdtemp(prefix="strangler-shadow-bench-"))
    up_port, slow_port = free_port(), free_port()
    upstream = start(["nginx", "-c", str(nginx_conf(run, "upstream", 1, up_port, BODY, None))])
    slow = start([sys.executable, __file__, "--slow-backend", str(slow_port)])
    entries = [
        Entry("nginx-2w", "nginx reverse proxy, 2 workers (reference)"),
        Entry("shadow-off", "strangler run --workers 2, no shadow block"),
        Entry(
            "shadow-100",
            f"strangler run --workers 2, shadow 100% to a {DELAY * 1000:.0f} ms backend",
        ),
    ]
    counts: dict[str, float] = {}
    admins: dict[str, int] = {}
    slow_ticks = 0  # the shadow backend's CPU over the shadow-100 rounds
    try:
        wait_http(f"http://{HOST}:{up_port}/api/x")
        wait_http(f"http://{HOST}:{slow_port}/api/x")
        for entry in entries:  # all started up front; idle while another is measured
            entry.port = free_port()
            if entry.name == "nginx-2w":
                conf = nginx_conf(run, "proxy", 2, entry.port, None, up_port)
                entry.proc = start(["nginx", "-c", str(conf)])
            else:
                admin = admins[entry.name] = free_port()
                conf = gateway_conf(run, entry.name, entry.port, admin, up_port, slow_port)
                entry.proc = start([strangler, "run", "-c", str(conf), "--workers", "2"])
                wait_http(f"http://{HOST}:{admin}/readyz")
            wait_http(f"http://{HOST}:{entry.port}/api/x")
            wrk(entry.port, HI, WARMUP, None)
            entry.results[HI] = []
        # Interleaved, in alternating order (A B C C B A ...), so that drift on a shared
        # machine and any effect of running order hit all entries alike.
        for rep in range(REPS):
            for entry in entries if rep % 2 == 0 else entries[::-1]:
                print(f"{entry.name} c{HI} run {rep + 1}/{REPS}", file=sys.stderr, flush=True)
                pid = entry.proc.pid if entry.proc else None
                before = tree_ticks(slow.pid)
                entry.results[HI].append(wrk(entry.port, HI, DURATION, pid))
                if entry.name == "shadow-100":
                    slow_ticks += tree_ticks(slow.pid) - before
        time.sleep(1.5)  # let workers publish their last metrics snapshot
        counts = shadow_counts(admins["shadow-100"])
    finally:
        for entry in entries:
            stop(entry.proc)
        stop(slow)
        stop(upstream)
        shutil.rmtree(run, ignore_errors=True)
    report(entries, counts, slow_ticks / CLK / (REPS * DURATION))
    return 0


def report(entries: list[Entry], counts: dict[str, float], slow_cpu: float) -> None:
    by = {e.name: e for e in entries}
    off, on = by["shadow-off"], by["shadow-100"]
    print(f"\n# strangler shadow benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print(
        f"{os.cpu_count()} CPUs shared by wrk, upstream, shadow backend and proxy; wrk -t2 "
        f"-c{HI}, {REPS} rounds x {DURATION}s after {WARMUP}s warm-up, medians.\n"
    )
    print("| entry | rps | p50 ms | p99 ms | CPU µs/req | errors |")
    print("|---|---|---|---|---|---|")
    for e in entries:
        errors = sum(r.errors for r in e.results[HI])
        print(
            f"| {e.name} | {e.median(HI, 'rps'):,.0f} | {e.median(HI, 'p50'):.2f} | "
            f"{e.median(HI, 'p99'):.2f} | {e.median(HI, 'cpu_us'):.0f} | {errors} |"
        )
    print()
    for e in entries:
        print(f"- **{e.name}**: {e.what}")
    print("\n| round | rps off | rps 100 | rps ratio | p99 off | p99 100 | p99 ratio |")
    print("|---|---|---|---|---|---|---|")
    paired: dict[str, list[float]] = {"rps": [], "p99": []}
    for i, (a, b) in enumerate(zip(off.results[HI], on.results[HI], strict=True), 1):
        paired["rps"].append(b.rps / a.rps)
        paired["p99"].append(b.p99 / a.p99)
        print(
            f"| {i} | {a.rps:,.0f} | {b.rps:,.0f} | {b.rps / a.rps:.1%} | {a.p99:.2f} | "
            f"{b.p99:.2f} | {b.p99 / a.p99:.1%} |"
        )
    rps = on.median(HI, "rps") / off.median(HI, "rps")
    p99 = on.median(HI, "p99") / off.median(HI, "p99")
    rps_paired = statistics.median(paired["rps"])
    p99_paired = statistics.median(paired["p99"])
    print(
        f"\nrps shadow-100 / shadow-off: {rps:.1%} of medians, {rps_paired:.1%} median of "
        f"rounds (bar >= 95%); rounds {spread(paired['rps'])}"
    )
    print(
        f"p99 shadow-100 / shadow-off: {p99:.1%} of medians, {p99_paired:.1%} median of "
        f"rounds (bar <= 110%); rounds {spread(paired['p99'])}"
    )
    total = sum(counts.values())
    if total:
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts.items()))
        print(f"shadow samples over the shadow-100 runs (incl. warm-up): {shown}")
    print(f"shadow backend CPU during the shadow-100 rounds: {slow_cpu:.1%} of one CPU")


def spread(ratios: list[float]) -> str:
    """The rounds' lowest, quartiles and highest ratio."""
    if len(ratios) < 2:
        return f"{ratios[0]:.1%}"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{min(ratios):.1%} / {q1:.1%} - {q3:.1%} / {max(ratios):.1%} (min / quartiles / max)"


if __name__ == "__main__":
    sys.exit(main())
