#!/usr/bin/env python3
"""Where a gateway worker spends its time under load: py-spy on ``strangler run``.

    make bench-profile                 # 4 connections, 15 s
    CONNS=64 SECONDS=20 make bench-profile

The set-up is bench/run.py's (nginx upstream, the same routes.yaml with a routing rule,
a sticky route and metrics), with one worker so that one process holds every request.
wrk drives it while py-spy samples the worker (wall clock, idle excluded); the script
prints the top functions by own time and by inclusive time, per source line collapsed
to the function.  Own time on the line of a ``write`` is mostly the system call (on
loopback it runs the receiver's TCP stack).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    BODY,
    HOST,
    free_port,
    gateway_conf,
    nginx_conf,
    start,
    stop,
    wait_http,
)

CONNS = int(os.environ.get("CONNS", "4"))
SECONDS = int(os.environ.get("SECONDS", "15"))
TOP = int(os.environ.get("TOP", "15"))


def function_of(frame: str) -> str:
    """``name (path:line)`` -> ``name (path)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise(raw: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for row in raw.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for name in {function_of(f) for f in frames}:
            inclusive[name] += n
    return total, own, inclusive


def main() -> int:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: run bench/setup.sh", file=sys.stderr)
            return 2
    bindir = Path(sys.executable).parent
    spy = shutil.which("py-spy") or str(bindir / "py-spy")
    strangler = shutil.which("strangler") or str(bindir / "strangler")
    run = Path(tempfile.mkdtemp(prefix="strangler-profile-"))
    up_port, port, admin = free_port(), free_port(), free_port()
    upstream = start(["nginx", "-c", str(nginx_conf(run, "upstream", 1, up_port, BODY, None))])
    gateway = None
    try:
        wait_http(f"http://{HOST}:{up_port}/api/x")
        conf = gateway_conf(run, port, admin, up_port)
        gateway = start([strangler, "run", "-c", str(conf), "--workers", "1"])
        wait_http(f"http://{HOST}:{admin}/readyz")
        worker = Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children").read_text().split()[0]
        url = f"http://{HOST}:{port}/api/x"
        load = subprocess.Popen(
            ["wrk", f"-t{min(2, CONNS)}", f"-c{CONNS}", f"-d{SECONDS + 4}s"]
            + ["-H", "x-user-id: bench-user-7", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        out = run / "profile.txt"
        subprocess.run(
            [spy, "record", "-r", "500", "-d", str(SECONDS), "-f", "raw", "-o", str(out)]
            + ["-p", worker],
            check=True,
            capture_output=True,
        )
        rps = load.communicate()[0]
        total, own, inclusive = summarise(out.read_text())
    finally:
        stop(gateway)
        stop(upstream)
    print(f"\n# strangler worker profile, wrk c{CONNS}, {SECONDS} s, {total:,} samples\n")
    for line in rps.splitlines():
        if "Requests/sec" in line:
            print(f"wrk: {line.strip()}\n")
    print("| own time | source line |\n|---|---|")
    for name, n in own.most_common(TOP):
        print(f"| {n / total:.1%} | `{name}` |")
    print("\n| inclusive | function |\n|---|---|")
    below_loop = [(k, n) for k, n in inclusive.most_common() if n < total * 0.99]
    for name, n in below_loop[:TOP]:  # frames under the event loop's own
        print(f"| {n / total:.1%} | `{name}` |")
    shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
