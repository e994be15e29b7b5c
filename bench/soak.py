#!/usr/bin/env python3
"""Soak benchmark: hours-long behaviour in minutes.  Does the gateway keep its memory flat,
answer every request it can, and give every acknowledged write an event, while its
configuration is reloaded and its backend is killed and restarted under it?

    make bench-soak                                  # 30 minutes
    .venv/bin/python bench/soak.py --minutes 3 --rate 100

Everything runs on 127.0.0.1 in a temporary directory: the example legacy monolith (its
own SQLite file), a second monolith on another file as the shadow backend, and
``strangler run --workers N`` capturing the monolith's order writes into a SQLite outbox
and shadowing 100% of the order reads.  Mixed order traffic (creates, updates, deletes
keeping at most a few hundred live orders, reads of one order and of the list) goes
out at about ``--rate`` requests/s from a bounded number of clients.  Every minute the
routes file is rewritten with another weight and reloaded (``POST /admin/reload``);
every five minutes the monolith is killed (SIGKILL) and started again on the same port
and database.  Worker RSS is sampled every 10 s.

At the end the gateway is stopped (its captured writes flushed) and the outbox is
compared with the writes the monolith acknowledged, by request id.  The report (also
written as JSON to ``--out``) fails the run (exit 1) when worker RSS drifted more than
10% after warm-up, a request failed other than with a 502/503/504 naming the monolith
while it was down, or an acknowledged write has neither an event nor an in-doubt entry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak_cluster import Cluster, answers, worker_rss  # noqa: E402
from bench.soak_load import Load  # noqa: E402
from bench.soak_tally import Window, drift, explained, ledger, render, verdict  # noqa: E402
from gateway.capture.outbox import open_store  # noqa: E402

SAMPLE_EVERY = 10.0
RESTART_TIMEOUT = 30.0


async def pause(seconds: float, deadline: float) -> bool:
    """Sleep ``seconds`` and say True, unless that would reach ``deadline`` (then False)."""
    if time.monotonic() + seconds >= deadline:
        return False
    await asyncio.sleep(seconds)
    return True


class Soak:
    """The timed part: traffic, with RSS samples, reloads and backend restarts beside it."""

    def __init__(self, cluster: Cluster, args: argparse.Namespace) -> None:
        self.cluster, self.args = cluster, args
        self.start = time.monotonic()
        self.deadline = self.start + args.minutes * 60
        self.load = Load(cluster.port, args.rate, args.clients, self.deadline)
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.reloads: Counter[str] = Counter({"ok": 0, "failed": 0})
        self.windows: list[Window] = []

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.load.run())
            group.create_task(self._sample())
            group.create_task(self._reload())
            group.create_task(self._restart())
        self.sample()  # "at the end": after the traffic, before the gateway stops

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.start, worker_rss(self.cluster.gateway.pid)))

    async def _sample(self) -> None:
        self.sample()
        while await pause(SAMPLE_EVERY, self.deadline):
            self.sample()

    async def _reload(self) -> None:
        async with httpx.AsyncClient(timeout=15) as client:
            while await pause(self.args.reload_every, self.deadline):
                self.cluster.write_routes(10 if sum(self.reloads.values()) % 2 == 0 else 0)
                try:
                    reply = await client.post(f"{self.cluster.admin_url}/admin/reload")
                    ok = reply.status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.reloads["ok" if ok else "failed"] += 1
                self._progress()

    async def _restart(self) -> None:
        while await pause(self.args.restart_every, self.deadline):
            down = time.monotonic()
            self.cluster.legacy.kill()
            self.cluster.legacy.start()
            while not await asyncio.to_thread(answers, self.cluster.legacy_port):
                if time.monotonic() - down > RESTART_TIMEOUT:
                    log = self.cluster.legacy.log
                    raise RuntimeError(f"the monolith did not come back; see {log}")
                await asyncio.sleep(0.05)
            self.windows.append(Window("legacy", down, time.monotonic()))
            print(f"monolith restarted: down {time.monotonic() - down:.2f}s", file=sys.stderr)

    def _progress(self) -> None:
        load = self.load
        minutes = (time.monotonic() - self.start) / 60
        rss = self.samples[-1][1] if self.samples else {}
        print(
            f"[{minutes:.1f}/{self.args.minutes} min] sent {load.sent:,} ok {load.ok:,} "
            f"failed {len(load.failures):,}; reloads {dict(self.reloads)}; "
            f"restarts {len(self.windows)}; worker RSS KiB {sorted(rss.values())}",
            file=sys.stderr,
            flush=True,
        )


def read_outbox(path: Path) -> tuple[list[str], list[str]]:
    """The request ids of every event (published or not) and of every in-doubt entry."""
    with closing(sqlite3.connect(path)) as db:
        headers = [h for (h,) in db.execute("SELECT headers FROM strangler_outbox")]
    events = [str(json.loads(h).get("request_id", "")) for h in headers]

    async def doubts() -> list[str]:
        store = open_store(f"sqlite:///{path}")
        try:
            return [d.request_id for d in await store.doubts(limit=1_000_000_000)]
        finally:
            await store.close()

    return events, asyncio.run(doubts())


def build_report(soak: Soak, elapsed: float, outbox: tuple[list[str], list[str]]) -> dict[str, Any]:
    args, load = soak.args, soak.load
    # The allocator and caches settle over minutes: judge from 5 min (20% of a short run).
    warm_at = min(300.0, 0.2 * args.minutes * 60)
    workers = drift(soak.samples, warm_at)
    max_drift = max((w.max_pct for w in workers.values()), default=0.0)
    explained_n = sum(explained(f, soak.windows) for f in load.failures)
    unexplained = [f for f in load.failures if not explained(f, soak.windows)]
    books = ledger(load.acknowledged, *outbox)
    report: dict[str, Any] = {
        "minutes": args.minutes,
        "workers": args.workers,
        "rate": args.rate,
        "clients": args.clients,
        "elapsed_s": round(elapsed, 1),
        "rss": {
            "warm_at_s": warm_at,
            "samples": len(soak.samples),
            "max_drift_pct": round(max_drift, 2),
            "workers": {
                pid: {
                    "warm_kib": w.warm_kib,
                    "end_kib": w.end_kib,
                    "max_pct": round(w.max_pct, 2),
                    "max_sample_pct": round(w.max_sample_pct, 2),
                }
                for pid, w in workers.items()
            },
            "series": [{"t": round(t, 1), "kib": by_pid} for t, by_pid in soak.samples],
        },
        "requests": {
            "sent": load.sent,
            "achieved_rate": load.sent / elapsed if elapsed else 0.0,
            "ok": load.ok,
            "failed": len(load.failures),
            "explained": explained_n,
            "unexplained": len(unexplained),
            "by_op": dict(load.by_op),
            "failed_by_status": dict(Counter(str(f.status) for f in load.failures)),
            "unexplained_samples": [f.to_json() for f in unexplained[:20]],
        },
        "reloads": dict(soak.reloads),
        "restarts": len(soak.windows),
        "down_windows_s": [round(w.end - w.start, 3) for w in soak.windows],
        "outbox": {
            "acknowledged": books.acknowledged,
            "events": books.events,
            "doubts": books.doubts,
            "lost": len(books.lost),
            "lost_samples": books.lost[:20],
            "duplicated": books.duplicated,
            "unacknowledged": books.unacknowledged,
        },
    }
    report["reasons"] = verdict(max_drift, len(unexplained), len(books.lost))
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300.0, help="requests/s, in total")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--reload-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--restart-every", type=float, default=300.0, help="seconds")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / f"soak-{stamp}.json"
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.clients < 1 or args.workers < 1:
        parser.error("--minutes and --rate must be positive, --clients and --workers at least 1")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind through the finally blocks that stop the children


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    run = Path(tempfile.mkdtemp(prefix="strangler-soak-"))
    cluster = Cluster(run, args.workers)
    keep = True
    try:
        cluster.start()
        print(f"soaking for {args.minutes} min; logs in {run}", file=sys.stderr, flush=True)
        soak = Soak(cluster, args)
        asyncio.run(soak.run())
        elapsed = time.monotonic() - soak.start
        cluster.gateway.stop()  # flushes what the workers captured into the outbox
        report = build_report(soak, elapsed, read_outbox(cluster.outbox))
        keep = bool(report["reasons"])
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
        if keep:
            print(f"logs and databases kept in {run}", file=sys.stderr)
        else:
            shutil.rmtree(run, ignore_errors=True)
    print(render(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    for reason in report["reasons"]:
        print(f"failed: {reason}", file=sys.stderr)
    return 1 if report["reasons"] else 0


if __name__ == "__main__":
    sys.exit(main())
