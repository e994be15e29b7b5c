"""Smoke tests proving the suite's services are real: an asyncpg round trip, an aiokafka
produce/consume through a consumer group, and an ASGI app over a real socket."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.eventually import eventually
from tests.harness import UvicornThread


async def test_postgres_round_trip(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, v text)")
        await conn.execute("INSERT INTO t VALUES ($1, $2)", 1, "one")
        assert await conn.fetchval("SELECT v FROM t WHERE id = $1", 1) == "one"
        version = await conn.fetchval("SHOW server_version")
        assert str(version).split(".")[0].isdigit()
    finally:
        await conn.close()


async def test_kafka_produce_consume_with_group(kafka_bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got: list[bytes] = []

        async def fetched() -> bool:
            batch = await consumer.getmany(timeout_ms=250)
            got.extend(m.value for msgs in batch.values() for m in msgs)
            return len(got) >= 10

        await eventually(fetched, timeout=10, interval=0, message=f"10 records on {topic}")
        await consumer.commit()
    finally:
        await consumer.stop()
    assert got == [f"v{i}".encode() for i in range(10)]


def test_uvicorn_thread_serves_real_socket() -> None:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path})

    with UvicornThread(Starlette(routes=[Route("/x", hello)])) as server:
        response = httpx.get(f"{server.url}/x")
    assert response.json() == {"path": "/x"}
