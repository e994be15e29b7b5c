#!/usr/bin/env python3
"""Proxy benchmark: the gateway side by side with nginx, in one run, against one upstream.

    make bench                       # everything (about 8 minutes)
    DURATION=5 REPS=1 make bench     # quicker, noisier
    ONLY=direct,nginx-2w,strangler-2w make bench

Upstream: nginx with one worker answering ``GET /api/x`` with 1 KiB of JSON.
Entries: ``direct`` (wrk straight to the upstream), ``nginx-2w`` (nginx proxy, 2
workers, keep-alive upstream pool), ``strangler-1w`` and ``strangler-2w``
(``strangler run --workers N`` with a method/prefix routing rule ahead, the
request taking a sticky weighted route keyed by a header, metrics on), and for
reference ``floor-task-2w`` and ``floor-callback-2w``: ``bench/floor.py``, a bare
Python forwarder with nothing but pooled forwarding, with a task per request and
without (what the runtime itself costs on this machine).

With ``BASE=<checkout>``, the entry ``base-2w`` runs ``strangler run --workers 2`` from
that checkout (its native build made there) beside this one: an A/B of a change, in the
same rounds.

All entries run side by side.  For each connection count (64, then 4): a warm-up of
each, then REPS rounds of ``wrk -t2 -dDURATION --latency`` taking the entries in turn,
in alternating order (A B C, then C B A: drift on a shared machine hits all of them
alike, and no entry always runs first or last); the table shows medians.  CPU per
request is the entry's process-tree CPU time (from /proc) divided by requests served.
"added p50" is the entry's p50 at 4 connections minus direct's.  Then, unless MEMORY=0,
what IDLE_CONNS (2,000) idle keep-alive client connections cost each proxy in memory:
the RSS delta per worker over the connections it holds (bench/memory.py; target for
strangler: under 20 KiB).  Results are also written to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
DURATION = int(os.environ.get("DURATION", "10"))
REPS = int(os.environ.get("REPS", "5"))
WARMUP = int(os.environ.get("WARMUP", "3"))
CONNS = [int(c) for c in os.environ.get("CONNS", "64,4").split(",")]
ONLY = [e for e in os.environ.get("ONLY", "").split(",") if e]
MEMORY = os.environ.get("MEMORY", "1") != "0"
BASE = os.environ.get("BASE", "")  # another checkout, run beside as base-2w
CLK = os.sysconf("SC_CLK_TCK")
BODY = json.dumps({"id": 12345, "name": "bench", "pad": "x" * 990})[:1024]


def raise_fd_limit() -> None:
    """Room for thousands of connections here and in the proxies started from here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 16384:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(16384, hard), hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def tree_ticks(pid: int) -> int:
    """utime+stime of a process and all its descendants (clock ticks)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            stack += [int(c) for c in children]
        except OSError:
            continue
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class Run:
    rps: float
    p50: float  # ms
    p99: float
    cpu_us: float  # per request, entry's process tree
    errors: int


def wrk(port: int, conns: int, seconds: int, pid: int | None) -> Run:
    before = tree_ticks(pid) if pid else 0
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, conns)}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            "x-user-id: bench-user-7",
            f"http://{HOST}:{port}/api/x",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ticks = (tree_ticks(pid) - before) if pid else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+)"):
        m = re.search(pattern, out)
        errors += int(m.group(1)) if m else 0
    cpu_us = ticks / CLK / total * 1e6 if total and pid else 0.0
    return Run(rps, p50, p99, cpu_us, errors)


@dataclass
class Entry:
    name: str
    what: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    results: dict[int, list[Run]] = field(default_factory=dict)
    memory: str = ""  # what idle keep-alive connections cost (bench/memory.py)

    def median(self, conns: int, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.results[conns]))


def nginx_conf(
    run: Path, name: str, workers: int, port: int, body: str | None, upstream: int | None
) -> Path:
    tmp = run / f"{name}-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    if body is not None:
        location = f"default_type application/json; return 200 '{body}';"
        upstreams = ""
    else:
        location = (
            'proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";'
        )
        upstreams = (
            f"upstream backend {{ server {HOST}:{upstream}; keepalive 256; "
            "keepalive_requests 10000000; keepalive_timeout 75s; }"
        )
    conf = run / f"{name}.conf"
    conf.write_text(f"""
worker_processes {workers}; daemon off; master_process on;
pid {run}/{name}.pid; error_log {run}/{name}.error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 75s;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  {upstreams}
  server {{ listen {HOST}:{port} backlog=4096; location / {{ {location} }} }}
}}
""")
    return conf


def gateway_conf(run: Path, port: int, admin: int, upstream: int) -> Path:
    conf = run / f"gateway-{port}.yaml"
    conf.write_text(f"""\
version: 1
listen: {HOST}:{port}
admin: {{listen: {HOST}:{admin}}}
backends:
  legacy: {{url: "http://{HOST}:{upstream}", legacy: true}}
  users-v2: {{url: "http://{HOST}:{upstream}"}}
routes:
  - name: writes
    match: {{prefix: /api, methods: [POST, PUT, PATCH, DELETE]}}
    split: {{legacy: 100}}
  - name: api
    match: {{prefix: /api}}
    split: {{users-v2: 20, legacy: 80}}
    sticky: {{header: x-user-id}}
    override: {{header: x-strangler-backend}}
    fallback: legacy
  - name: default
    split: {{legacy: 100}}
""")
    return conf


def start(cmd: list[str], cwd: str | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=cwd,
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_entry(entry: Entry, run: Path, up_port: int) -> None:
    """Start ``entry``'s process (direct has none) and wait until it answers."""
    if entry.name == "nginx-2w":
        entry.port = free_port()
        conf = nginx_conf(run, "proxy", 2, entry.port, None, up_port)
        entry.proc = start(["nginx", "-c", str(conf)])
    elif entry.name.startswith(("strangler", "base")):
        strangler = shutil.which("strangler") or str(Path(sys.executable).parent / "strangler")
        strangler = os.path.abspath(strangler)
        entry.port, admin = free_port(), free_port()
        workers = entry.name[-2]
        conf = gateway_conf(run, entry.port, admin, up_port)
        cmd = [strangler, "run", "-c", str(conf), "--workers", workers]
        cwd = None
        if entry.name.startswith("base"):  # the same command, importing the other checkout
            code = "import sys; from gateway.cli import main; sys.exit(main())"
            cmd, cwd = [sys.executable, "-c", code, *cmd[1:]], BASE
        entry.proc = start(cmd, cwd=cwd)
        wait_http(f"http://{HOST}:{admin}/readyz")
    elif entry.name.startswith("floor"):
        entry.port = free_port()
        mode = entry.name.split("-")[1]
        floor = [sys.executable, str(HERE / "floor.py"), str(entry.port), str(up_port)]
        entry.proc = start([*floor, "2", mode])
    wait_http(f"http://{HOST}:{entry.port}/api/x")


def main() -> int:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is missing: run bench/setup.sh (installs wrk and nginx)", file=sys.stderr
            )
            return 2
    raise_fd_limit()
    run = Path(tempfile.mkdtemp(prefix="strangler-bench-"))
    up_port = free_port()
    upstream = start(["nginx", "-c", str(nginx_conf(run, "upstream", 1, up_port, BODY, None))])
    entries = [
        Entry("direct", "wrk -> upstream nginx (ceiling)", up_port),
        Entry("nginx-2w", "nginx reverse proxy, 2 workers, keep-alive pool"),
        Entry("strangler-1w", "strangler run --workers 1 (routing rule, sticky route, metrics)"),
        Entry("strangler-2w", "strangler run --workers 2 (routing rule, sticky route, metrics)"),
        Entry("floor-task-2w", "bench/floor.py, 2 workers: a bare forwarder, a task per request"),
        Entry("floor-callback-2w", "bench/floor.py, 2 workers: a bare forwarder, no task"),
    ]
    if BASE:
        entries.append(Entry("base-2w", f"strangler run --workers 2 from {BASE}"))
    entries = [e for e in entries if not ONLY or e.name in ONLY or e.name == "direct"]
    try:
        wait_http(f"http://{HOST}:{up_port}/api/x")
        for entry in entries:
            start_entry(entry, run, up_port)
        # Interleaved, in alternating order (A B C C B A ...): drift on a shared machine hits
        # every entry alike, and no entry always runs first or last in a round.
        for conns in CONNS:
            for entry in entries:
                print(f"{entry.name} c{conns} warm-up", file=sys.stderr, flush=True)
                wrk(entry.port, conns, WARMUP, None)
                entry.results[conns] = []
            for rep in range(REPS):
                for entry in entries if rep % 2 == 0 else entries[::-1]:
                    print(
                        f"{entry.name} c{conns} run {rep + 1}/{REPS}", file=sys.stderr, flush=True
                    )
                    pid = entry.proc.pid if entry.proc else None
                    entry.results[conns].append(wrk(entry.port, conns, DURATION, pid))
        if MEMORY:
            idle_memory(entries)
    finally:
        for entry in entries:
            stop(entry.proc)
        stop(upstream)
        shutil.rmtree(run, ignore_errors=True)
    report(entries)
    return 0


def idle_memory(entries: list[Entry]) -> None:
    """What idle keep-alive connections cost each proxy (bench/memory.py)."""
    sys.path.insert(0, str(ROOT))
    from bench.memory import IDLE_CONNS, measure

    for entry in entries:
        if entry.proc is not None and not entry.name.startswith("floor"):
            print(f"{entry.name} {IDLE_CONNS} idle connections", file=sys.stderr, flush=True)
            entry.memory = measure(entry.port, entry.proc.pid).describe()


def report(entries: list[Entry]) -> None:
    by = {e.name: e for e in entries}
    hi, lo = max(CONNS), min(CONNS)
    nginx = by.get("nginx-2w")
    direct = by["direct"]
    print(f"\n# strangler proxy benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print(
        f"{os.cpu_count()} CPUs shared by wrk, upstream and proxy; wrk -t2, {REPS} x {DURATION}s "
        f"after {WARMUP}s warm-up, interleaved, medians. Upstream: nginx 1 worker, 1 KiB JSON.\n"
    )
    print(
        f"| entry | rps c{hi} | vs nginx-2w | p50 ms c{hi} | p99 ms c{hi} | CPU µs/req c{hi} "
        f"| rps c{lo} | p50 ms c{lo} | added p50 µs c{lo} | CPU µs/req c{lo} | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    out = {}
    for e in entries:
        rps = e.median(hi, "rps")
        ratio = f"{rps / nginx.median(hi, 'rps'):.0%}" if nginx else "-"
        added = (e.median(lo, "p50") - direct.median(lo, "p50")) * 1000
        errors = sum(r.errors for runs in e.results.values() for r in runs)
        cpu = e.median(hi, "cpu_us")
        print(
            f"| {e.name} | {rps:,.0f} | {ratio} | {e.median(hi, 'p50'):.2f} | "
            f"{e.median(hi, 'p99'):.2f} | {cpu:.0f} | {e.median(lo, 'rps'):,.0f} | "
            f"{e.median(lo, 'p50'):.3f} | {added:+.0f} | {e.median(lo, 'cpu_us'):.0f} | {errors} |"
        )
        out[e.name] = {str(c): [r.__dict__ for r in runs] for c, runs in e.results.items()}
    print()
    for e in entries:
        print(f"- **{e.name}**: {e.what}")
    print("\nPer round (each round runs every entry back to back):\n")
    for e in entries:
        if e is direct:
            continue
        added_by_round = [
            (r.p50 - d.p50) * 1000 for r, d in zip(e.results[lo], direct.results[lo], strict=True)
        ]
        line = f"- **{e.name}**: added p50 c{lo} " + ", ".join(f"{a:+.0f}" for a in added_by_round)
        if nginx and e is not nginx:
            ratios = [r.rps / n.rps for r, n in zip(e.results[hi], nginx.results[hi], strict=True)]
            line += f"; vs nginx-2w c{hi} " + ", ".join(f"{x:.0%}" for x in ratios)
            line += f" (median {statistics.median(ratios):.0%})"
        print(line)
    if any(e.memory for e in entries):
        print("\nIdle keep-alive client connections, RSS delta per worker:\n")
        for e in entries:
            if e.memory:
                print(f"- **{e.name}**: {e.memory}")
                out[e.name]["idle_memory"] = e.memory  # type: ignore[assignment]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
