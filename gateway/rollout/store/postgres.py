"""The PostgreSQL rollout store (asyncpg; pools opened by the toolkit's PostgreSQL seam):
every gateway replica reads the same weights from it and publishes its counters to it,
stamped with the server's clock so that replicas with skewed clocks agree on their age."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from gateway.rollout.evidence import Counts
from gateway.rollout.machine import State
from gateway.rollout.store.port import COUNTERS_RETENTION, Conflict, StoreError
from strangler_events.storage.postgres import DRIVER_ERRORS, LazyPool

SCHEMA = """
CREATE TABLE IF NOT EXISTS strangler_rollout (
    route      TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    state      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS strangler_rollout_leader (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS strangler_rollout_counters (
    instance TEXT NOT NULL,
    route    TEXT NOT NULL,
    counts   TEXT NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance, route)
);
"""


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise StoreError(f"PostgreSQL rollout store: {exc}") from exc


class PostgresRollouts:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = LazyPool(url, max_size=2)

    async def _get(self) -> asyncpg.Pool:
        async with translated():
            return await self._pool.get()

    async def init(self) -> None:
        pool = await self._get()
        async with translated():
            await pool.execute(SCHEMA)

    async def get(self, route: str) -> tuple[State, int] | None:
        return (await self._select(route)).get(route)

    async def all(self) -> dict[str, tuple[State, int]]:
        return await self._select(None)

    async def _select(self, route: str | None) -> dict[str, tuple[State, int]]:
        pool = await self._get()
        sql = "SELECT route, version, state FROM strangler_rollout"
        async with translated():
            if route is None:
                rows = await pool.fetch(sql)
            else:
                rows = await pool.fetch(sql + " WHERE route = $1", route)
        return {r[0]: (State.from_json(json.loads(r[2])), int(r[1])) for r in rows}

    async def put(self, state: State, version: int) -> int:
        pool = await self._get()
        text = json.dumps(state.to_json())
        async with translated():
            if version == 0:
                status = await pool.execute(
                    "INSERT INTO strangler_rollout (route, version, state) VALUES ($1, 1, $2) "
                    "ON CONFLICT (route) DO NOTHING",
                    state.route,
                    text,
                )
            else:
                status = await pool.execute(
                    "UPDATE strangler_rollout SET version = version + 1, state = $1, "
                    "updated_at = now() WHERE route = $2 AND version = $3",
                    text,
                    state.route,
                    version,
                )
        if not status.endswith(" 1"):
            raise Conflict(
                f"the rollout of {state.route} changed meanwhile (not version {version})"
            )
        return version + 1

    async def lead(self, holder: str, ttl: float) -> bool:
        # The server's clock decides expiry, so replicas with skewed clocks agree.
        pool = await self._get()
        async with translated():
            status = await pool.execute(
                "INSERT INTO strangler_rollout_leader (name, holder, expires_at)"
                " VALUES ('driver', $1, clock_timestamp() + $2::float8 * interval '1 second')"
                " ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE strangler_rollout_leader.holder = excluded.holder"
                " OR strangler_rollout_leader.expires_at < clock_timestamp()",
                holder,
                ttl,
            )
        return bool(status.endswith(" 1"))

    async def leader(self) -> str | None:
        pool = await self._get()
        async with translated():
            holder = await pool.fetchval(
                "SELECT holder FROM strangler_rollout_leader"
                " WHERE name = 'driver' AND expires_at >= clock_timestamp()"
            )
        return None if holder is None else str(holder)

    async def resign(self, holder: str) -> None:
        pool = await self._get()
        async with translated():
            await pool.execute("DELETE FROM strangler_rollout_leader WHERE holder = $1", holder)

    async def publish(self, instance: str, counters: Mapping[str, Counts]) -> None:
        pool = await self._get()
        rows = [(instance, r, json.dumps(c.to_json())) for r, c in counters.items()]
        async with translated(), pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO strangler_rollout_counters (instance, route, counts, seen_at)"
                " VALUES ($1, $2, $3, clock_timestamp()) ON CONFLICT (instance, route)"
                " DO UPDATE SET counts = excluded.counts, seen_at = excluded.seen_at",
                rows,
            )
            await conn.execute(
                "DELETE FROM strangler_rollout_counters"
                " WHERE seen_at < clock_timestamp() - $1::float8 * interval '1 second'",
                COUNTERS_RETENTION,
            )

    async def counters(self, route: str, max_age: float) -> dict[str, Counts]:
        pool = await self._get()
        async with translated():
            rows = await pool.fetch(
                "SELECT instance, counts FROM strangler_rollout_counters WHERE route = $1"
                " AND seen_at >= clock_timestamp() - $2::float8 * interval '1 second'",
                route,
                max_age,
            )
        return {str(r[0]): Counts.from_json(json.loads(r[1])) for r in rows}

    async def close(self) -> None:
        await self._pool.close()
