#!/usr/bin/env python3
"""Event store benchmark on one throwaway PostgreSQL, each figure next to its raw
baseline measured in the same run, on the same server, with the same durability.

    make bench-eventstore        # or: .venv/bin/python bench/eventstore.py
    DURATION=3 READ_EVENTS=50000 make bench-eventstore    # a short run

The harness's cluster runs with fsync=off and synchronous_commit=off; both sides of
every comparison run on it, so the ratios compare like with like (the absolute
numbers are higher than on a durable server).

1. single-event appends with an exact expected version, WRITERS (16) concurrent
   writers (each on its own streams), vs WRITERS writers doing raw single-row INSERT
   transactions into a plain table with the same columns; ops/s over DURATION s.
   Also with one sequential writer each (anchor: pyeventsourcing on PostgreSQL, about
   3,100 ops/s with one sequential client).
2. 100-event batch appends, one writer: p50/p99 latency, vs a raw 100-row INSERT
   statement (anchor: Marten, about 3.6 ms per 100-event append).
3. catch-up read of a category (READ_EVENTS events among as many of another
   category) with ``read_category`` pages of 1000, vs raw asyncpg pages of the same
   rows (no watermark), without and with decoding the JSON columns.

Bars from the issue: appends >= 50% of raw (goal 80%), 100-event p50 <= 10 ms,
category read >= 50,000 events/s.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from strangler_events.eventstore.port import NewEvent  # noqa: E402
from strangler_events.eventstore.postgres import PostgresEventStore  # noqa: E402
from tests.harness import postgres_cluster  # noqa: E402

DURATION = float(os.environ.get("DURATION", "10"))
WRITERS = int(os.environ.get("WRITERS", "16"))
BATCHES = int(os.environ.get("BATCHES", "300"))
READ_EVENTS = int(os.environ.get("READ_EVENTS", "200000"))
DATA = {"sku": "ABC-123", "quantity": 2, "note": "x" * 64}
META = {"correlation_id": "c" * 32, "request_id": "r" * 32}

RAW_SCHEMA = """
CREATE TABLE raw_events (
    position    BIGSERIAL PRIMARY KEY,
    id          UUID NOT NULL,
    stream      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    type        TEXT NOT NULL,
    data        JSONB NOT NULL,
    metadata    JSONB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
RAW_INSERT = (
    "INSERT INTO raw_events (id, stream, version, type, data, metadata)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"
)
RAW_BATCH = (
    "INSERT INTO raw_events (id, stream, version, type, data, metadata)"
    " SELECT i, $1, v, 'Happened', d::jsonb, m::jsonb"
    " FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[]) AS u(i, v, d, m)"
)
RAW_READ = (
    "SELECT position, id::text, stream, version, type, data::text, metadata::text,"
    " recorded_at FROM raw_events WHERE stream LIKE 'read-%' AND position > $1"
    " ORDER BY position LIMIT 1000"
)


async def for_duration(writers: int, op: Callable[[int, int], Awaitable[None]]) -> float:
    """ops/s of ``writers`` concurrent loops calling ``op(writer, n)`` for DURATION s."""
    deadline = time.perf_counter() + DURATION
    counts = [0] * writers

    async def loop(k: int) -> None:
        while time.perf_counter() < deadline:
            await op(k, counts[k])
            counts[k] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def raw_inserts(pool: asyncpg.Pool, writers: int) -> float:
    data, meta = json.dumps(DATA), json.dumps(META)

    async def op(k: int, n: int) -> None:
        await pool.execute(RAW_INSERT, uuid.uuid4(), f"raw-{k}-{n % 50}", n, "Happened", data, meta)

    return await for_duration(writers, op)


async def appends(store: PostgresEventStore, writers: int, tag: str) -> float:
    versions: dict[str, int] = {}

    async def op(k: int, n: int) -> None:
        stream = f"{tag}{k}-{n % 50}"
        version = versions.get(stream, 0)
        await store.append(stream, [NewEvent("Happened", DATA, META)], version)
        versions[stream] = version + 1

    return await for_duration(writers, op)


async def batch_latencies(
    pool: asyncpg.Pool, store: PostgresEventStore
) -> tuple[list[float], list[float]]:
    store_ms, raw_ms = [], []
    data, meta = json.dumps(DATA), json.dumps(META)
    for n in range(BATCHES):
        events = [NewEvent("Happened", DATA, META) for _ in range(100)]
        started = time.perf_counter()
        await store.append(f"batch-{n}", events, 0)
        store_ms.append((time.perf_counter() - started) * 1000)
        ids = [uuid.uuid4() for _ in range(100)]
        started = time.perf_counter()
        await pool.execute(
            RAW_BATCH, f"rawbatch-{n}", ids, list(range(1, 101)), [data] * 100, [meta] * 100
        )
        raw_ms.append((time.perf_counter() - started) * 1000)
    return store_ms, raw_ms


async def catch_up(pool: asyncpg.Pool, store: PostgresEventStore) -> tuple[float, float, float]:
    """Events/s through ``read_category``; raw rows/s without and with JSON decoding."""
    per_stream = 100
    for n in range(READ_EVENTS // per_stream):
        for category in ("read", "noise"):
            events = [NewEvent("Happened", DATA, META) for _ in range(per_stream)]
            await store.append(f"{category}-{n}", events, 0)
            ids = [uuid.uuid4() for _ in range(per_stream)]
            data, meta = json.dumps(DATA), json.dumps(META)
            versions = list(range(1, per_stream + 1))
            await pool.execute(
                RAW_BATCH,
                f"{category}-{n}",
                ids,
                versions,
                [data] * per_stream,
                [meta] * per_stream,
            )
    await pool.execute("VACUUM ANALYZE")

    started, seen, after = time.perf_counter(), 0, 0
    while page := await store.read_category("read", after, 1000):
        seen, after = seen + len(page), page[-1].position
    store_rate = seen / (time.perf_counter() - started)

    rates = []
    for decode in (False, True):
        started, raw_seen, last = time.perf_counter(), 0, 0
        while rows := await pool.fetch(RAW_READ, last):
            if decode:
                for r in rows:
                    json.loads(r[5]), json.loads(r[6])
            raw_seen, last = raw_seen + len(rows), rows[-1][0]
        rates.append(raw_seen / (time.perf_counter() - started))
        assert seen == raw_seen == READ_EVENTS // per_stream * per_stream, (seen, raw_seen)
    return store_rate, rates[0], rates[1]


def row(measure: str, value: str, baseline: str, ratio: float | None, bar: str) -> str:
    shown = "" if ratio is None else f"{ratio:.0%}"
    return f"| {measure} | {value} | {baseline} | {shown} | {bar} |"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(dsn: str) -> None:
    print(
        f"duration {DURATION:g}s per rate, {WRITERS} writers, {BATCHES} batches, "
        f"{READ_EVENTS:,} events to read; PostgreSQL {dsn}",
        file=sys.stderr,
    )
    pool = await asyncpg.create_pool(dsn, min_size=WRITERS, max_size=WRITERS)
    await pool.execute(RAW_SCHEMA)
    await pool.execute("CREATE INDEX ON raw_events (stream, position)")
    store = PostgresEventStore(dsn, pool_size=WRITERS)
    await store.init()
    try:
        raw16 = await raw_inserts(pool, WRITERS)
        app16 = await appends(store, WRITERS, "many")
        raw1 = await raw_inserts(pool, 1)
        app1 = await appends(store, 1, "one")
        store_ms, raw_ms = await batch_latencies(pool, store)
        read_rate, raw_read, raw_decoded = await catch_up(pool, store)
    finally:
        await store.close()
        await pool.close()
    report((app16, raw16), (app1, raw1), (store_ms, raw_ms), (read_rate, raw_read, raw_decoded))


def report(
    many: tuple[float, float],
    one: tuple[float, float],
    batches: tuple[list[float], list[float]],
    reads: tuple[float, float, float],
) -> None:
    """The results table, each figure beside its baseline."""
    (app16, raw16), (app1, raw1), (store_ms, raw_ms) = many, one, batches
    read_rate, raw_read, raw_decoded = reads
    p50, raw50 = statistics.median(store_ms), statistics.median(raw_ms)
    rows = [
        (
            f"single-event appends, exact expected version, {WRITERS} writers",
            f"{app16:,.0f} ops/s",
            f"{raw16:,.0f} INSERT tx/s",
            app16 / raw16,
            ">= 50% (goal 80%)",
        ),
        (
            "single-event appends, 1 sequential writer",
            f"{app1:,.0f} ops/s",
            f"{raw1:,.0f} INSERT tx/s",
            app1 / raw1,
            "pyeventsourcing ~3,100 ops/s",
        ),
        (
            "100-event append, p50",
            f"{p50:.2f} ms",
            f"{raw50:.2f} ms (100-row INSERT)",
            p50 / raw50,
            "<= 10 ms; Marten ~3.6 ms",
        ),
        (
            "100-event append, p99",
            f"{pct(store_ms, 0.99):.2f} ms",
            f"{pct(raw_ms, 0.99):.2f} ms",
            None,
            "",
        ),
        (
            "category catch-up read (pages of 1000)",
            f"{read_rate:,.0f} events/s",
            f"{raw_read:,.0f} rows/s (raw fetch)",
            read_rate / raw_read,
            ">= 50,000 events/s",
        ),
        (
            "category catch-up read, vs raw fetch + JSON decode",
            f"{read_rate:,.0f} events/s",
            f"{raw_decoded:,.0f} rows/s",
            read_rate / raw_decoded,
            "",
        ),
    ]
    print(f"\n# event store benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print("| measure | value | raw baseline (same run) | ratio | bar / anchor |")
    print("|---|---|---|---|---|")
    for measure in rows:
        print(row(*measure))


def main() -> int:
    with postgres_cluster() as cluster:
        asyncio.run(run(cluster.dsn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
