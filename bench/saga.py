#!/usr/bin/env python3
"""Saga benchmark: the checkout saga end to end (three steps through the broker, state
in PostgreSQL), next to the broker's raw produce rate measured in the same run.

    make bench-saga              # or: .venv/bin/python bench/saga.py
    CHECKOUTS=500 make bench-saga    # a short run

In one run, on a throwaway PostgreSQL cluster and a local broker (tansu, or
``STRANGLER_TEST_KAFKA``), with the outbox relay, the saga runner and the three
participants (inventory, payment, shipping) in this process:

1. raw produce: aiokafka sends RAW_RECORDS records of a command's size, acks=all,
   without waiting per record (the ceiling of what any Kafka path here can do);
2. throughput: CHECKOUTS orders placed at once (10% declined, so compensated);
   completed checkouts per second from the first placement to the last instance
   terminal, and p50/p99 per checkout (placed -> terminal);
3. latency at low rate: SERIAL checkouts one after another; p50/p99.

Each checkout is 4 saga transitions, 3 participant commands and 7 relayed messages
(start, 3 commands, 3 replies) plus the outcome event.  Bar from the issue: >= 200
checkouts/s; goal >= 1,000.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.outbox import with_services  # noqa: E402
from tests.examples.checkout_env import CheckoutEnv  # noqa: E402

CHECKOUTS = int(os.environ.get("CHECKOUTS", "2000"))
SERIAL = int(os.environ.get("SERIAL", "50"))
RAW_RECORDS = int(os.environ.get("RAW_RECORDS", "50000"))
SCALE = int(os.environ.get("SCALE", "4"))  # runners and consumers per participant
VALUE = b'{"id":"%s","type":"ProcessPayment","payload":{"order_id":"o-1","amount":20.0}}' % (
    b"x" * 36
)


async def raw_produce(bootstrap: str) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        await producer.send_and_wait("bench.saga.raw", VALUE)  # the topic exists
        start = time.perf_counter()
        futures = [
            await producer.send("bench.saga.raw", VALUE, key=str(n % 1000).encode())
            for n in range(RAW_RECORDS)
        ]
        await asyncio.gather(*futures)
        return RAW_RECORDS / (time.perf_counter() - start)
    finally:
        await producer.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def throughput(env: CheckoutEnv) -> tuple[float, list[float], dict[str, int]]:
    declined = set(range(0, CHECKOUTS, 10))
    placed_at = time.time()
    ids = await env.place(CHECKOUTS, declined=declined)
    found = await env.until_terminal(ids, timeout=max(120.0, CHECKOUTS / 5))
    last = max(i.updated_at for i in found.values())  # when the last one ended
    rate = CHECKOUTS / (last - placed_at)
    durations = [i.updated_at - placed_at for i in found.values()]
    states: dict[str, int] = {}
    for inst in found.values():
        states[inst.state] = states.get(inst.state, 0) + 1
    return rate, durations, states


async def serial(env: CheckoutEnv) -> list[float]:
    durations = []
    for _ in range(SERIAL):
        placed_at = time.time()
        ids = await env.place(1)
        (inst,) = (await env.until_terminal(ids, timeout=60)).values()
        durations.append(inst.updated_at - placed_at)
    return durations


async def run(dsn: str, bootstrap: str) -> None:
    print(
        f"checkouts: {CHECKOUTS:,}; {SCALE} runners and {SCALE} consumers per participant "
        f"({SCALE} partitions per topic); broker {bootstrap}; PostgreSQL {dsn}",
        file=sys.stderr,
    )
    raw = await raw_produce(bootstrap)
    stock = {"book": 10 * CHECKOUTS + 1000}
    async with CheckoutEnv(dsn, bootstrap, stock=stock, scale=SCALE) as env:
        await env.start_all()
        await env.until_terminal(await env.place(20), timeout=120)  # warm: groups joined
        cpu = time.process_time()
        rate, durations, states = await throughput(env)
        cpu = time.process_time() - cpu
        low = await serial(env)
    print(f"\n# saga benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print("| measure | value | bar / baseline |\n|---|---|---|")
    print(f"| raw aiokafka produce (acks=all, batched), same broker | {raw:,.0f} msg/s | |")
    print(
        f"| checkouts end to end, {CHECKOUTS:,} at once (10% declined) | {rate:,.1f} "
        f"checkouts/s | >= 200 (goal 1,000); {rate * 8 / raw:.1%} of raw produce at 8 "
        "messages per checkout |"
    )
    p50 = statistics.median(durations) * 1000
    print(f"| per checkout under that load, p50 | {p50:,.0f} ms | |")
    print(f"| per checkout under that load, p99 | {pct(durations, 0.99) * 1000:,.0f} ms | |")
    print(f"| one checkout at a time, p50 | {statistics.median(low) * 1000:,.0f} ms | |")
    print(f"| one checkout at a time, p99 | {pct(low, 0.99) * 1000:,.0f} ms | |")
    print(f"\nfinal states: {states}; CPU in this process {cpu:.1f} s", file=sys.stderr)


def main() -> int:
    return with_services(run)


if __name__ == "__main__":
    sys.exit(main())
