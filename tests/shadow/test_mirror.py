"""Mirroring through a real gateway: real uvicorn backends on loopback, real sockets, the
SQLite result store, and the report built from what was stored."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.config import Route
from gateway.config.loader import parse
from gateway.http.exchange import Sample
from gateway.http.upstream import PooledTransport, UpstreamRequest, UpstreamResponse
from gateway.metrics.registry import Counter, Registry
from gateway.proxy.proxy import Proxy
from gateway.tasks import spawn
from gateway.types import Headers
from shadow.mirror import FLUSH_MAX, SHED_FOLD, Lane, Mirror
from shadow.report import EndpointReport, build
from shadow.store import Result, open_store
from tests.eventually import eventually
from tests.gateway.support import config_text, fire, gateway
from tests.harness import UvicornThread, free_port
from tests.shadow.test_pacing import Turns

Seen = list[tuple[str, str, dict[str, str]]]


def item_app(seen: Seen, bump: int = 0, noisy: bool = False, delay: float = 0.0) -> Any:
    """``/api/items/N`` -> ``{"id": N, "name": ..., "price": 10N + bump, "tags": [...]}``;
    ``noisy`` adds a random uuid and a timestamp to every response."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        seen.append((scope["method"], scope["path"], headers))
        if delay:
            await asyncio.sleep(delay)
        tail = scope["path"].rsplit("/", 1)[1]
        n = int(tail) if tail.isdigit() else 0
        doc: dict[str, Any] = {"id": n, "name": f"item {n}", "price": n * 10 + bump}
        doc["tags"] = ["a", "b"]
        if noisy:
            doc["request_uuid"] = str(uuid.uuid4())
            doc["generated_at"] = time.time()
        body = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"date", str(time.time()).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def serving(*apps: Any) -> Iterator[list[UvicornThread]]:
    servers = [UvicornThread(app) for app in apps]
    for s in servers:
        s.__enter__()
    try:
        yield servers
    finally:
        for s in servers:
            s.__exit__(None, None, None)


def routes(tmp: Path, legacy: str, v2: str, shadow: str, split: str = "legacy: 100") -> str:
    return config_text(
        {"legacy": legacy, "v2": v2},
        f"""\
  - name: items
    match: {{prefix: /api/items}}
    split: {{{split}}}
    shadow: {{backend: v2, percent: 100{shadow}}}
""",
        f'shadow_store: {{url: "sqlite:///{tmp}/shadow.db"}}\n',
    )


async def results(tmp: Path, expected: int, timeout: float = 15.0) -> list[Result]:
    """Stored results once they account for ``expected`` samples."""
    store = open_store(f"sqlite:///{tmp}/shadow.db")

    async def enough() -> list[Result]:
        rows = await store.results()
        stored = sum(r.count for r in rows)
        if stored < expected:
            raise AssertionError(f"{stored} of {expected} samples stored")
        return rows

    try:
        return await eventually(enough, timeout=timeout, interval=0.1, message="shadow results")
    finally:
        await store.close()


def gets(n: int, method: str = "GET") -> list[tuple[str, str, list[tuple[bytes, bytes]]]]:
    return [(method, f"/api/items/{i}", []) for i in range(n)]


def one(rows: list[Result]) -> EndpointReport:
    [endpoint] = build(rows).endpoints
    return endpoint


def comparisons(proxy: Proxy) -> Counter:
    """The mirror's comparison counter, read from the worker's metrics registry."""
    metric = proxy.metrics.registry.metrics["strangler_shadow_comparisons_total"]
    assert isinstance(metric, Counter)
    return metric


async def test_identical_backends_match_completely(tmp_path: Path) -> None:
    seen_legacy: Seen = []
    seen_v2: Seen = []
    with serving(item_app(seen_legacy), item_app(seen_v2)) as (legacy, v2):
        # room for every sample: were the shadow side to fall behind (it shares the
        # test's process), the lane would shed some, as designed, and compare fewer
        shadow = ", queue: 200"
        with gateway(routes(tmp_path, legacy.url, v2.url, shadow)) as (server, proxy):
            replies = await fire(server.port, gets(200), concurrency=8)
            rows = await results(tmp_path, 200)
            assert comparisons(proxy).get(("items", "match")) == 200
    assert {r.status for r in replies} == {200}
    e = one(rows)
    assert (e.endpoint, e.compared, e.matched, e.differing, e.fields) == (
        "/api/items/{id}",
        200,
        200,
        0,
        [],
    )
    # the shadow copy: same method, path and request id, marked; never the client's view
    assert len(seen_v2) == 200
    assert all(h["x-strangler-shadow"] == "1" for _, _, h in seen_v2)
    assert not any("x-strangler-shadow" in h for _, _, h in seen_legacy)
    legacy_ids = {h["x-request-id"] for _, _, h in seen_legacy}
    assert {h["x-request-id"] for _, _, h in seen_v2} == legacy_ids


async def test_one_different_field_is_reported_at_its_path(tmp_path: Path) -> None:
    with serving(item_app([]), item_app([], bump=1)) as (legacy, v2):
        shadow = ", store_values: true"
        with gateway(routes(tmp_path, legacy.url, v2.url, shadow)) as (server, _):
            await fire(server.port, gets(100), concurrency=4)
            rows = await results(tmp_path, 100)
    e = one(rows)
    assert (e.compared, e.matched, e.differing) == (100, 0, 100)
    assert [(f.path, f.kind, f.raw) for f in e.fields] == [("/price", "value", 100)]
    example = e.fields[0].examples[0]
    assert int(example.shadow) == int(example.primary) + 1


async def test_noise_cancellation_suppresses_random_ids_and_timestamps(tmp_path: Path) -> None:
    noisy = item_app([], noisy=True)
    with serving(noisy, item_app([], noisy=True, bump=1)) as (legacy, v2):
        # with the secondary call: uuid and timestamp disappear; the real difference stays
        with gateway(routes(tmp_path, legacy.url, v2.url, ", noise: {secondary: true}")) as (s, _):
            await fire(s.port, gets(100), concurrency=4)
            rows = await results(tmp_path, 100)
    e = one(rows)
    assert e.noise_cancellation
    assert [(f.path, f.raw, f.noise) for f in e.fields] == [("/price", 100, 0)]
    assert e.suppressed == ["/generated_at", "/request_uuid"]

    off = tmp_path / "off"
    off.mkdir()
    with serving(item_app([], noisy=True), item_app([], noisy=True)) as (legacy, v2):
        with gateway(routes(off, legacy.url, v2.url, "")) as (s, _):
            await fire(s.port, gets(50), concurrency=4)
            rows = await results(off, 50)
    e = one(rows)
    assert not e.noise_cancellation
    assert sorted(f.path for f in e.fields) == ["/generated_at", "/request_uuid"]
    assert e.differing == 50


async def timed_gets(port: int, n: int) -> tuple[list[int], list[float]]:
    transport = PooledTransport()
    statuses, took = [], []
    try:
        for i in range(n):
            start = time.perf_counter()
            request = UpstreamRequest(b"GET", b"/api/items/%d" % i, [(b"host", b"gw")])
            response = await transport.send("127.0.0.1", port, request, 5, 30, 1)
            _ = b"".join([c async for c in response.chunks()])
            took.append(time.perf_counter() - start)
            statuses.append(response.status)
    finally:
        await transport.aclose()
    return statuses, took


async def test_dead_or_slow_shadow_never_changes_the_primary(tmp_path: Path) -> None:
    with serving(item_app([]), item_app([], delay=5.0)) as (legacy, slow):
        off = config_text(
            {"legacy": legacy.url},
            "  - name: items\n    match: {prefix: /api/items}\n    split: {legacy: 100}\n",
        )
        with gateway(off) as (server, _):
            await timed_gets(server.port, 20)  # warm-up
            statuses, base = await timed_gets(server.port, 100)
        assert set(statuses) == {200}
        dead = f"http://127.0.0.1:{free_port()}"
        for name, url in (("dead", dead), ("slow", slow.url)):
            where = tmp_path / name
            where.mkdir()
            with gateway(routes(where, legacy.url, url, ", timeout: 1s")) as (server, proxy):
                await timed_gets(server.port, 20)
                statuses, took = await timed_gets(server.port, 100)
                assert set(statuses) == {200}, name
                assert max(took) < 0.5, name  # a 5 s shadow held nothing up
                allowed = statistics.median(base) * 1.5 + 0.002
                assert statistics.median(took) <= allowed, (name, statistics.median(took), base)
                rows = await results(where, 120)
            assert proxy.mirror is not None
            e = one(rows)
            assert e.errors + e.shed == 120 and e.compared == 0, name
            reason = "shadow connect-failure" if name == "dead" else "shadow timeout"
            assert reason in e.error_reasons, (name, e.error_reasons)


async def test_full_lane_sheds_and_counts(tmp_path: Path) -> None:
    with serving(item_app([]), item_app([], delay=0.5)) as (legacy, v2):
        shadow = ", concurrency: 1, queue: 1"
        with gateway(routes(tmp_path, legacy.url, v2.url, shadow)) as (server, _):
            replies = await fire(server.port, gets(30), concurrency=1)
            rows = await results(tmp_path, 30)
    assert {r.status for r in replies} == {200}
    e = one(rows)
    assert e.compared + e.shed == 30
    assert e.shed >= 20 and e.compared >= 2


async def test_never_shadows_onto_the_backend_that_served(tmp_path: Path) -> None:
    seen_v2: Seen = []
    with serving(item_app([]), item_app(seen_v2)) as (legacy, v2):
        text = routes(tmp_path, legacy.url, v2.url, "", split="v2: 100")
        with gateway(text) as (server, _):
            await fire(server.port, gets(10), concurrency=2)
            rows = await results(tmp_path, 10)
    e = one(rows)
    assert (e.skipped, e.skip_reasons, e.compared) == (10, {"same-backend": 10}, 0)
    assert len(seen_v2) == 10  # only the primary calls


async def test_writes_are_mirrored_only_when_allowed_and_marked(tmp_path: Path) -> None:
    seen_legacy: Seen = []
    seen_v2: Seen = []
    with serving(item_app(seen_legacy), item_app(seen_v2)) as (legacy, v2):
        shadow = ", methods: [GET, POST], allow_writes: true"
        with gateway(routes(tmp_path, legacy.url, v2.url, shadow)) as (server, _):
            await fire(server.port, gets(5, "POST") + gets(5, "PUT") + gets(2), concurrency=1)
            rows = await results(tmp_path, 7)
    assert [m for m, _, _ in seen_v2] == ["POST"] * 5 + ["GET"] * 2  # PUT is not in methods
    assert all(h["x-strangler-shadow"] == "1" for _, _, h in seen_v2)
    # a mirrored write is marked as a dry run; a mirrored read is not, nor the primary
    assert [h.get("x-strangler-dry-run") for _, _, h in seen_v2] == ["1"] * 5 + [None] * 2
    assert not any("x-strangler-dry-run" in h for _, _, h in seen_legacy)
    assert len(seen_legacy) == 12
    assert sum(e.compared for e in build(rows).endpoints) == 7


async def test_large_responses_skip_comparison(tmp_path: Path) -> None:
    with serving(item_app([]), item_app([])) as (legacy, v2):
        with gateway(routes(tmp_path, legacy.url, v2.url, ", max_body_bytes: 10")) as (s, _):
            await fire(s.port, gets(10), concurrency=2)
            rows = await results(tmp_path, 10)
    e = one(rows)
    assert e.skip_reasons == {"too-large": 10}


async def test_mirrored_writes_are_never_captured_into_the_outbox(tmp_path: Path) -> None:
    from gateway.capture.outbox import open_store as open_outbox

    seen_v2: Seen = []
    with serving(item_app([]), item_app(seen_v2)) as (legacy, v2):
        text = config_text(
            {"legacy": legacy.url, "v2": v2.url},
            """\
  - name: items
    match: {prefix: /api/items}
    split: {legacy: 100}
    shadow: {backend: v2, methods: [POST], allow_writes: true}
    capture:
      - {method: POST, path: "/api/items/{n}", event: ItemCreated, aggregate: item,
         id: "response:/id"}
""",
            f'shadow_store: {{url: "sqlite:///{tmp_path}/shadow.db"}}\n'
            f'outbox: {{url: "sqlite:///{tmp_path}/outbox.db", spool: "{tmp_path}/spool"}}\n',
        )
        with gateway(text) as (server, _):
            await fire(server.port, gets(5, "POST"), concurrency=1)
            await results(tmp_path, 5)
    assert len(seen_v2) == 5  # every write was mirrored ...
    outbox = open_outbox(f"sqlite:///{tmp_path}/outbox.db")
    rows = await outbox.pending(100)
    await outbox.close()
    assert sorted(r.event.aggregateid for r in rows) == ["0", "1", "2", "3", "4"]  # ... once each


async def test_mirrored_bodies_are_sent_whole_with_their_content_length(tmp_path: Path) -> None:
    seen_legacy: Seen = []
    seen_v2: Seen = []
    with serving(item_app(seen_legacy), item_app(seen_v2)) as (legacy, v2):
        shadow = ", methods: [POST], allow_writes: true"
        with gateway(routes(tmp_path, legacy.url, v2.url, shadow)) as (server, _):
            transport = PooledTransport()
            try:
                for body in (b'{"quantity": 3}', b""):
                    request = UpstreamRequest(b"POST", b"/api/items/7", [(b"host", b"gw")], body)
                    response = await transport.send("127.0.0.1", server.port, request, 5, 30, 1)
                    assert response.status == 200 and [c async for c in response.chunks()]
            finally:
                await transport.aclose()
            await results(tmp_path, 2)
    assert [h.get("content-length") for _, _, h in seen_v2] == ["15", "0"]
    assert not any("transfer-encoding" in h for _, _, h in seen_v2 + seen_legacy)


# --- the lane's drain tasks (unit tests over a fake transport) ---------------------------

LANE_CONFIG = """\
version: 1
listen: 127.0.0.1:1
backends:
  legacy: {url: "http://127.0.0.1:2", legacy: true}
  v2: {url: "http://127.0.0.1:3"}
routes:
  - name: items
    match: {prefix: /api/items}
    split: {legacy: 100}
    shadow: {backend: v2, percent: 100, concurrency: 4, queue: 100}
"""


class Answered:
    def __init__(self) -> None:
        self.status = 200
        self.headers: Headers = [(b"content-type", b"application/json")]

    def complete_body(self) -> bytes | None:
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b'{"id": 1}'

    def close(self) -> None:
        pass


class FakeShadow:
    """Answers at once (``then`` runs first, on the next loop turn) or when released."""

    def __init__(self, turns: Turns | None = None) -> None:
        self.calls = 0
        self.at: list[int] = []  # the loop turn of each call, when ``turns`` counts them
        self.turns = turns
        self.in_flight = 0
        self.most = 0
        self.release = asyncio.Event()
        self.then: Any = None

    async def send(
        self,
        host: str,
        port: int,
        request: UpstreamRequest,
        connect_timeout: float,
        response_timeout: float,
        pool_size: int,
        max_pending: int | None = None,
    ) -> UpstreamResponse:
        self.calls += 1
        if self.turns is not None:
            self.at.append(self.turns.now)
        if self.then is not None:
            asyncio.get_running_loop().call_soon(self.then)
            self.then = None
            return Answered()
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        return Answered()

    async def aclose(self) -> None:
        pass


def sample(n: int) -> Sample:
    headers = [(b"content-type", b"application/json")]
    body = b'{"id": 1}'
    path = f"/api/items/{n}"
    return Sample(
        "items", "GET", path, path.encode(), [], b"", "legacy", 200, headers, body, 0.001,
        f"r{n}", 1.0,
    )  # fmt: skip


def submitted(mirror: Mirror, route: Route, n: int) -> Lane:
    """The route's lane, after ``n`` samples were kept and submitted on it."""
    for i in range(n):
        lane = mirror.lane(route, "GET", f"/api/items/{i}", "legacy", True)
        assert lane is not None
        lane.submit(sample(i))
    [lane] = mirror.lanes.values()
    return lane


async def test_a_busy_lane_runs_at_most_concurrency_tasks_and_mirrors_every_kept_sample() -> None:
    config = parse(LANE_CONFIG)
    shadow = FakeShadow()
    mirror = Mirror(config.backends, Registry(), None, shadow)
    lane = submitted(mirror, config.routes[0], 50)
    assert len(lane.tasks) == 4  # not one task per sample
    await eventually(lambda: shadow.in_flight == 4, timeout=5, message="4 shadow calls out")
    shadow.release.set()
    await eventually(lambda: lane.waiting == 0, timeout=5, message="the lane drained")
    assert (shadow.calls, shadow.most) == (50, 4)
    await mirror.flush()
    assert mirror.comparisons.get(("items", "match")) == 50


async def test_answers_that_come_in_one_turn_are_compared_one_per_turn() -> None:
    config = parse(LANE_CONFIG)
    with Turns() as turns:
        shadow = FakeShadow(turns)
        mirror = Mirror(config.backends, Registry(), None, shadow)
        lane = submitted(mirror, config.routes[0], 8)
        await eventually(lambda: shadow.in_flight == 4, timeout=5, message="4 shadow calls out")
        shadow.release.set()  # the four answers come in one turn
        await eventually(lambda: lane.waiting == 0, timeout=5, message="the lane drained")
    # Each comparison is followed, in its turn, by the next sample's call.
    first, then = shadow.at[:4], shadow.at[4:]
    assert len(set(first)) == 1 and len(set(then)) == 4, shadow.at
    assert mirror.comparisons.get(("items", "match")) == 8


async def test_a_sample_kept_as_the_last_drain_task_ends_is_still_mirrored() -> None:
    config = parse(LANE_CONFIG.replace("concurrency: 4", "concurrency: 1"))
    shadow = FakeShadow()
    mirror = Mirror(config.backends, Registry(), None, shadow)
    lane = mirror.lane(config.routes[0], "GET", "/api/items/1", "legacy", True)
    assert lane is not None
    # The second sample arrives after the drain task found its queue empty, before the
    # loop ran the finished task's callbacks: it must get a drain task of its own.
    shadow.then = lambda: lane.submit(sample(2))
    lane.submit(sample(1))
    shadow.release.set()
    await eventually(lambda: shadow.calls == 2, timeout=5, message="the second sample mirrored")
    await eventually(lambda: lane.waiting == 0, timeout=5, message="the lane drained")


class SlowStore:
    """A result store whose writes wait for ``release``, counting cancelled ones."""

    url = "slow://"

    def __init__(self) -> None:
        self.batches: list[list[Result]] = []
        self.adding = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = 0
        self.closed = False

    async def init(self) -> None:
        pass

    async def add(self, results: Any) -> None:
        self.adding.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.batches.append(list(results))

    async def results(self, since: float = 0.0, route: str | None = None) -> list[Result]:
        return [r for batch in self.batches for r in batch]

    async def checkpoint(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


async def test_stop_lets_a_result_write_in_progress_finish_and_stores_it_once() -> None:
    # Cancelling the writer in the middle of a write (in SQLite: during its COMMIT)
    # leaves it unknown whether the batch was stored: stop must let the write end.
    config = parse(LANE_CONFIG)
    shadow = FakeShadow()
    shadow.release.set()
    store = SlowStore()
    mirror = Mirror(config.backends, Registry(), store, shadow)
    mirror.start()
    lane = mirror.lane(config.routes[0], "GET", "/api/items/1", "legacy", True)
    assert lane is not None
    lane.submit(sample(1))
    await asyncio.wait_for(store.adding.wait(), timeout=5)
    stopping = spawn(mirror.stop(), name="stop")
    for _ in range(20):  # loop turns, not time: stop runs as far as it will go
        await asyncio.sleep(0)
    assert store.cancelled == 0 and not stopping.done()
    store.release.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert [(r.outcome, r.count) for r in await store.results()] == [("compared", 1)]
    assert store.closed


async def test_a_backlog_is_written_a_batch_per_loop_turn_and_all_of_it_at_stop() -> None:
    # An embedded store writes on the event loop: no write takes more than FLUSH_MAX
    # results, and a backlog goes out one batch per loop turn, not one per interval.
    config = parse(LANE_CONFIG)
    store = SlowStore()
    store.release.set()
    mirror = Mirror(config.backends, Registry(), store, FakeShadow())
    backlog = [Result(float(n), "api", "GET", "/api/items/{id}", "compared") for n in range(5000)]
    for result in backlog[:3500]:
        mirror._keep(result)
    mirror.start()
    await eventually(lambda: store.batches, timeout=5, message="the first flush")
    for _ in range(20):  # loop turns, not time: FLUSH_INTERVAL is 0.5 s
        await asyncio.sleep(0)
    # less than a batch left: it waits for the next interval, like any other result
    assert [len(b) for b in store.batches] == [FLUSH_MAX, FLUSH_MAX, FLUSH_MAX]
    for result in backlog[3500:]:
        mirror._keep(result)
    await mirror.stop()  # the rest, however much, one batch at a time
    assert [len(b) for b in store.batches][3:] == [FLUSH_MAX, FLUSH_MAX]
    assert [r.at for b in store.batches for r in b] == [r.at for r in backlog]


async def test_shed_samples_are_counted_by_endpoint_and_those_not_yet_counted_stay_bounded() -> (
    None
):
    # A shed sample is only counted by path in its lane on the request's turn; the
    # counts are folded at flush, or as a method's paths reach SHED_FOLD, so they stay
    # bounded however long flushes take.
    config = parse(LANE_CONFIG.replace("concurrency: 4, queue: 100", "concurrency: 1, queue: 1"))
    shadow = FakeShadow()  # never answers: the lane stays full
    store = SlowStore()
    store.release.set()
    mirror = Mirror(config.backends, Registry(), store, shadow)
    route = config.routes[0]
    for n in (1, 2):  # one sample in flight, one queued: the lane is full
        lane = mirror.lane(route, "GET", f"/api/items/{n}", "legacy", True)
        assert lane is not None
        lane.submit(sample(n))
    [full] = mirror.lanes.values()
    total = SHED_FOLD * 2 + 100
    longest = 0
    for n in range(total):
        path = f"/api/items/{n}/parts" if n % 3 == 0 else f"/api/items/{n}"
        assert mirror.lane(route, "GET", path, "legacy", True) is None
        longest = max([longest, *map(len, full.shed.values())])
    assert 0 < longest < SHED_FOLD
    await mirror.flush()
    shed = {r.endpoint: r.count for r in await store.results() if r.outcome == "shed"}
    parts = (total + 2) // 3  # n = 0, 3, 6, ...
    assert shed == {"/api/items/{id}": total - parts, "/api/items/{id}/parts": parts}
    assert mirror.comparisons.get(("items", "shed")) == total
    shadow.release.set()  # the two samples of the full lane end, and so does the mirror
    await mirror.stop()


async def test_sheds_counted_by_a_lane_a_reload_replaces_are_kept() -> None:
    config = parse(LANE_CONFIG.replace("concurrency: 4, queue: 100", "concurrency: 1, queue: 0"))
    shadow = FakeShadow()  # never answers: the lane stays full
    store = SlowStore()
    store.release.set()
    mirror = Mirror(config.backends, Registry(), store, shadow)
    lane = mirror.lane(config.routes[0], "GET", "/api/items/1", "legacy", True)
    assert lane is not None
    lane.submit(sample(1))
    for method in ("GET", "HEAD", "GET"):
        assert mirror.lane(config.routes[0], method, "/api/items/2", "legacy", True) is None
    reloaded = parse(LANE_CONFIG.replace("percent: 100", "percent: 100, timeout: 9s"))
    assert mirror.lane(reloaded.routes[0], "GET", "/api/items/3", "legacy", True) is not None
    assert mirror.lanes["items"] is not lane  # a new lane, empty, for the new block
    lane.submit(sample(4))  # sampled before the reload; its old lane is still full
    await mirror.flush()
    shed = {(r.method, r.endpoint): r.count for r in await store.results() if r.outcome == "shed"}
    assert shed == {("GET", "/api/items/{id}"): 3, ("HEAD", "/api/items/{id}"): 1}
    shadow.release.set()
    await mirror.stop()
