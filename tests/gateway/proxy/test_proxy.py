"""The proxy over real sockets: real uvicorn backends, the gateway served by uvicorn with its
own protocol, and clients on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from textwrap import dedent

import httpx
import pytest

from gateway.config import parse
from gateway.proxy.generation import Generation
from gateway.proxy.proxy import Proxy
from tests.eventually import eventually
from tests.gateway.support import backends, byte_stream, config_text, fire, gateway, raw_request


def split_routes(new: int, old: int, sticky: bool = False) -> str:
    lines = dedent(f"""\
          - name: users
            match: {{prefix: /api/users}}
            split: {{new: {new}, legacy: {old}}}
            fallback: legacy
            override: {{header: x-strangler-backend}}
        """)
    if sticky:
        lines += "  sticky: {header: x-user-id}\n"
    return lines + dedent("""\
          - name: admin
            match: {exact: /api/admin}
            split: {legacy: 1}
          - name: default
            split: {legacy: 1}
        """)


async def test_split_holds_within_two_percent_over_20k_requests() -> None:
    with backends("legacy", "new") as b:
        text = config_text({n: s.url for n, s in b.items()}, split_routes(30, 70))
        with gateway(text) as (gw, _):
            replies = await fire(gw.port, [("GET", "/api/users", [])] * 20000, concurrency=32)
    assert all(r.status == 200 for r in replies)
    counts = Counter(r.headers[b"x-strangler-backend"] for r in replies)
    assert abs(counts[b"new"] / 20000 - 0.30) <= 0.02, counts


async def test_sticky_users_keep_their_backend_and_raising_weight_moves_only_to_new() -> None:
    users = [f"user-{i}" for i in range(1000)]
    with backends("legacy", "new") as b:
        urls = {n: s.url for n, s in b.items()}
        with gateway(config_text(urls, split_routes(20, 80, sticky=True))) as (gw, proxy):
            requests = [("GET", "/api/users/me", [(b"x-user-id", u.encode())]) for u in users]
            rounds = [await fire(gw.port, requests, concurrency=32) for _ in range(10)]
            before = [r.headers[b"x-strangler-backend"] for r in rounds[0]]
            for replies in rounds[1:]:
                assert [r.headers[b"x-strangler-backend"] for r in replies] == before
            proxy.swap(Generation(parse(config_text(urls, split_routes(50, 50, sticky=True)))))
            after = [r.headers[b"x-strangler-backend"] for r in await fire(gw.port, requests)]
    moved = Counter((b, a) for b, a in zip(before, after, strict=True) if b != a)
    assert set(moved) == {(b"legacy", b"new")}
    assert abs(before.count(b"new") / 1000 - 0.20) < 0.05
    assert abs(after.count(b"new") / 1000 - 0.50) < 0.05


async def test_prefix_boundary_normalisation_and_encoded_separator() -> None:
    with backends("legacy", "new") as b:
        text = config_text({n: s.url for n, s in b.items()}, split_routes(100, 0))
        with gateway(text) as (gw, _):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                users = await client.get("/api/users/7")
                other = await client.get("/api/usersX")
                dotted = await client.get("/api/users/../admin")
                raw = await raw_request(
                    gw.port, b"GET /api/users/..%2Fadmin HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                decoded = await raw_request(
                    gw.port, b"GET /api/%75sers/./7 HTTP/1.1\r\nHost: x\r\n\r\n"
                )
    assert users.headers["x-strangler-route"] == "users"
    assert other.headers["x-strangler-route"] == "default"
    assert (dotted.headers["x-strangler-route"], dotted.json()["path"]) == ("admin", "/api/admin")
    assert raw.startswith(b"HTTP/1.1 400")
    assert b'"path": "/api/users/7"' in decoded and b"x-strangler-route: users" in decoded


async def test_headers_forwarded_and_hop_by_hop_removed() -> None:
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                r = await client.get(
                    "/x?a=1",
                    headers={
                        "x-forwarded-for": "6.6.6.6",
                        "connection": "keep-alive, x-secret",
                        "x-secret": "1",
                        "traceparent": "00-abc-def-01",
                        "te": "trailers",
                    },
                )
                given = await client.get("/x", headers={"x-request-id": "req-1"})
    seen = dict(r.json()["headers"])
    assert seen["x-forwarded-for"] == "127.0.0.1"  # not a trusted proxy: its claim is dropped
    assert seen["x-forwarded-proto"] == "http"
    assert seen["traceparent"] == "00-abc-def-01"
    assert "x-secret" not in seen and "te" not in seen
    assert seen["x-request-id"] == r.headers["x-request-id"] and len(seen["x-request-id"]) == 32
    assert r.json()["query"] == "a=1"
    assert "x-hop" not in r.headers and "keep-alive" not in r.headers
    assert given.headers["x-request-id"] == "req-1"
    assert dict(given.json()["headers"])["x-request-id"] == "req-1"


async def test_streams_100mb_both_ways() -> None:
    size = 100 * 1024 * 1024
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
                up = await client.post("/upload", content=byte_stream(size))
                got = 0
                async with client.stream("GET", f"/bytes/{size}") as down:
                    async for chunk in down.aiter_raw():
                        got += len(chunk)
    assert up.status_code == 200 and up.json()["size"] == size
    assert got == size


async def test_dead_backend_falls_back_without_client_errors() -> None:
    with backends("legacy", "new") as b:
        text = config_text({n: s.url for n, s in b.items()}, split_routes(50, 50))
        with gateway(text) as (gw, _):
            first = await fire(gw.port, [("GET", "/api/users", [])] * 500)
            b["new"].__exit__(None, None, None)  # the new service dies
            second = await fire(gw.port, [("GET", "/api/users", [])] * 500)
            put = await fire(gw.port, [("PUT", "/api/users/1", [])] * 50)
    assert Counter(r.status for r in first + second + put) == {200: 1050}
    assert {r.headers[b"x-strangler-backend"] for r in second} == {b"legacy"}


async def test_errors_name_route_and_backend() -> None:
    dead = f"http://127.0.0.1:{free_dead_port()}"
    with backends("legacy") as b:
        urls = {"legacy": b["legacy"].url, "dead": dead}
        routes = dedent("""\
              - name: slow
                match: {prefix: /slow}
                split: {legacy: 1}
                timeout: 200ms
              - name: gone
                split: {dead: 1}
            """)
        with gateway(config_text(urls, routes)) as (gw, proxy):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                slow = await client.get("/slow/2000")
                gone = await client.get("/anything")
                post = await client.post("/anything", content=b"x")
    assert slow.status_code == 504
    assert slow.json()["route"] == "slow" and slow.json()["backend"] == "legacy"
    assert gone.status_code == 502 and gone.json()["backend"] == "dead"
    assert "connect" in gone.json()["error"] and "Traceback" not in gone.text
    assert post.status_code == 502
    errors = proxy.metrics.upstream_errors
    assert errors.get(("dead", "connect-failure")) == 2 * 3  # 1 try + 2 default retries each
    assert errors.get(("legacy", "timeout")) == 1


async def test_a_backend_failing_mid_response_cuts_the_client_off() -> None:
    async def truncating(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # 10 of the 100,000 bytes announced, then gone
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(truncating, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    text = config_text(
        {"legacy": f"http://127.0.0.1:{port}"}, "  - {name: all, split: {legacy: 1}}"
    )
    async with server:
        with gateway(text) as (gw, proxy):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                for _ in range(2):  # and the gateway keeps serving
                    with pytest.raises(httpx.RemoteProtocolError):
                        await client.get("/big")
            assert proxy.metrics.upstream_errors.get(("legacy", "protocol")) == 2


async def test_host_is_kept_or_rewritten_per_backend_also_on_fallback() -> None:
    dead = free_dead_port()
    with backends("legacy", "new") as b:
        text = dedent(f"""\
            version: 1
            backends:
              legacy: {{url: "{b["legacy"].url}", legacy: true}}
              new: {{url: "{b["new"].url}", host_header: backend}}
              gone: {{url: "http://127.0.0.1:{dead}", host_header: backend}}
            routes:
              - {{name: new, match: {{prefix: /new}}, split: {{new: 1}}}}
              - {{name: moving, split: {{gone: 1}}, fallback: legacy}}
            """)
        with gateway(text) as (gw, _):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                headers = {"host": "shop.example"}
                rewritten = (await client.get("/new/x", headers=headers)).json()
                fell_back = await client.get("/other", headers=headers)
    host = dict(rewritten["headers"])["host"]
    assert host == b["new"].url.removeprefix("http://")
    assert fell_back.status_code == 200 and fell_back.headers["x-strangler-backend"] == "legacy"
    assert dict(fell_back.json()["headers"])["host"] == "shop.example"


async def test_503_is_retried_when_configured() -> None:
    with backends("legacy") as b:
        routes = dedent("""\
              - name: all
                split: {legacy: 1}
                retries: {attempts: 2, on: ["503"]}
            """)
        with gateway(config_text({"legacy": b["legacy"].url}, routes)) as (gw, proxy):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                ok = await client.get("/flaky/2")
    assert ok.status_code == 200
    assert proxy.metrics.retries.get(("all", "legacy")) == 2


async def test_override_header_and_unknown_override_counted() -> None:
    with backends("legacy", "new") as b:
        text = config_text({n: s.url for n, s in b.items()}, split_routes(0, 100))
        with gateway(text) as (gw, proxy):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                forced = await client.get("/api/users", headers={"x-strangler-backend": "new"})
                unknown = await client.get("/api/users", headers={"x-strangler-backend": "zzz"})
    assert forced.headers["x-strangler-backend"] == "new"
    assert unknown.headers["x-strangler-backend"] == "legacy"
    assert proxy.metrics.override_ignored.get(("users",)) == 1


def free_dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    time.sleep(0)
    return port


async def test_a_client_too_slow_with_its_body_gets_408() -> None:
    with backends("legacy") as b:
        text = config_text(
            {"legacy": b["legacy"].url},
            "  - {name: all, split: {legacy: 1}}",
            "proxy: {client_timeout: 1s}\n",
        )
        with gateway(text) as (gw, _):
            answer = await raw_request(
                gw.port, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"
            )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


async def test_a_content_length_body_reaches_the_backend_with_its_length() -> None:
    """A streamed body keeps the client's framing: a legacy server behind may refuse chunked."""
    size = 300_000
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                sized = await client.put("/upload", content=b"z" * size)
                chunked = await client.put("/upload", content=byte_stream(size, block=65536))
    seen = dict(sized.json()["headers"])
    assert seen.get("content-length") == str(size) and "transfer-encoding" not in seen
    assert sized.json()["size"] == size
    seen = dict(chunked.json()["headers"])
    assert seen.get("transfer-encoding") == "chunked" and "content-length" not in seen
    assert chunked.json()["size"] == size


@contextlib.asynccontextmanager
async def _silent_backend() -> AsyncIterator[str]:
    """A backend that accepts connections and never answers: its URL."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@contextlib.asynccontextmanager
async def _before_a_silent_backend(
    settings: str, timeout: str
) -> AsyncIterator[tuple[Proxy, httpx.AsyncClient]]:
    """The gateway in front of one backend that never answers (``settings``: its pool's),
    on one route with ``timeout`` and no retries; a client."""
    async with _silent_backend() as url:
        text = (
            "version: 1\nbackends:\n"
            f'  legacy: {{url: "{url}", legacy: true, {settings}}}\n'
            "routes:\n"
            f"  - {{name: all, split: {{legacy: 1}}, timeout: {timeout},"
            " retries: {attempts: 0}}\n"
        )
        async with _served(text) as served:
            yield served


@contextlib.asynccontextmanager
async def _served(text: str) -> AsyncIterator[tuple[Proxy, httpx.AsyncClient]]:
    """The gateway serving ``text``, and a client of it."""
    with gateway(text) as (gw, proxy):
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            yield proxy, client


async def test_the_route_timeout_covers_pool_wait_and_pending_requests_are_capped() -> None:
    async with _before_a_silent_backend("pool_size: 2, max_pending: 3", "1s") as (_, client):
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def one() -> tuple[int, float]:
            answer = await client.get("/x")
            return answer.status_code, loop.time() - began

        answers = await asyncio.gather(*(one() for _ in range(8)))
    statuses = Counter(status for status, _ in answers)
    # 2 hold the pool, 3 wait for it (all 504 within the 1 s route timeout), 3 are refused
    assert statuses == {504: 5, 503: 3}, statuses
    assert max(took for _, took in answers) < 2.5


async def test_requests_refused_for_a_full_queue_do_not_eject_the_backend() -> None:
    settings = "pool_size: 1, max_pending: 1, outlier: {consecutive_failures: 1}"
    async with _before_a_silent_backend(settings, "3s") as (proxy, client):
        # one is sent, one waits for the pool, four are refused at once
        calls = [asyncio.ensure_future(client.get("/x")) for _ in range(6)]
        await eventually(lambda: sum(c.done() for c in calls) == 4)
        assert [c.result().status_code for c in calls if c.done()] == [503] * 4
        assert proxy.metrics.upstream_errors.get(("legacy", "overflow")) == 4
        assert proxy.outliers.ejected() == frozenset()
        assert not proxy.metrics.ejections.get(("legacy",))
        statuses = Counter([(await c).status_code for c in calls])
    assert statuses == {503: 4, 504: 2}
    # the sent request's timeout is the backend's: it ejects it (the waiting one's is not)
    assert proxy.outliers.ejected() == frozenset({"legacy"})


async def test_a_fallback_the_route_left_no_time_for_is_not_counted_against() -> None:
    # The primary never answers and takes the route's whole time; the fallback is then
    # never asked, so neither its error count nor its ejection streak moves.
    async with _silent_backend() as silent:
        with backends("legacy") as b:
            text = (
                "version: 1\nbackends:\n"
                f'  legacy: {{url: "{b["legacy"].url}", legacy: true,'
                " outlier: {consecutive_failures: 1}}\n"
                f'  new: {{url: "{silent}"}}\n'
                "routes:\n  - {name: all, split: {new: 1}, fallback: legacy, timeout: 300ms}\n"
            )
            async with _served(text) as (proxy, client):
                answer = await client.get("/x")
    assert answer.status_code == 504
    errors = proxy.metrics.upstream_errors
    assert errors.get(("new", "timeout")) == 1 and not errors.get(("legacy", "timeout"))
    assert proxy.outliers.ejected() == frozenset()


async def test_a_body_trickling_past_the_route_timeout_is_refused() -> None:
    with backends("legacy") as b:
        text = config_text(
            {"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}, timeout: 1s}"
        )
        with gateway(text) as (gw, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
            began = asyncio.get_running_loop().time()
            for _ in range(3):  # one byte every 0.4 s: each read is in time, the body is not
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.4)
            answer = await asyncio.wait_for(reader.read(65536), 5)
            took = asyncio.get_running_loop().time() - began
            writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert took < 2.5


async def test_a_request_still_receiving_its_body_is_in_flight_on_the_routes_it_began_on() -> None:
    """A reload that waits for nothing in flight must not miss a request whose head came
    before the swap and whose body comes after: it counts from its head, and it is served
    by the routes it began on."""
    with backends("legacy", "new") as b:
        urls = {n: s.url for n, s in b.items()}
        with gateway(config_text(urls, "  - {name: all, split: {legacy: 1}}")) as (gw, proxy):
            in_flight = proxy.metrics.in_flight
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
            await writer.drain()
            await eventually(lambda: in_flight.get() == 1, timeout=5, message="in flight")
            proxy.swap(Generation(parse(config_text(urls, "  - {name: all, split: {new: 1}}"))))
            assert in_flight.get() == 1  # a reload waiting for none in flight waits for it
            writer.write(b"{}")
            answer = await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
            await eventually(lambda: in_flight.get() == 0, timeout=5, message="none in flight")
    assert answer.startswith(b"HTTP/1.1 200") and b"x-strangler-backend: legacy" in answer
