"""Mirror scheduling: send sampled requests to the shadow backend in the background.

The proxy asks :meth:`Mirror.lane` on its hot path whether a request is mirrored (a
counter-based sample, cheap checks, shedding when the route's lane is full), then hands the
kept copy to :meth:`Mirror.submit` once the client has its answer.  The rest runs in named
background tasks, at most ``shadow.concurrency`` per route with ``shadow.queue`` samples
waiting: the shadow call with its own timeout, an optional secondary call to the primary's
backend for noise cancellation, the pure comparison (:mod:`shadow.compare`, one per loop
turn: :mod:`shadow.pacing`), and batched writes to the result store.

The mirror has its own upstream transport, so a slow shadow backend cannot take
pooled connections the primary traffic needs, and it never touches outlier
detection, retries or write capture.

Every mirrored request carries ``x-strangler-shadow``.  A mirrored write (a method
outside ``SAFE_METHODS``, which ``shadow.allow_writes: true`` permits) also carries
``x-strangler-dry-run: 1``: the shadow backend must decide it and answer what it would
answer, and commit nothing (``examples/order_service/writes.py`` does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.config import Backend, Route, Shadow
from gateway.config.spec import SAFE_METHODS
from gateway.http.exchange import Sample
from gateway.http.host import host_for, with_host
from gateway.http.upstream import PooledTransport, Transport, UpstreamError, UpstreamRequest
from gateway.metrics.registry import Registry
from gateway.tasks import spawn
from shadow.compare import Difference, Reply, Rules, compare
from shadow.pacing import Pace
from shadow.sampling import Sampler, template
from shadow.store import FieldDiff, Result, ResultStore, StoreError, hashed

log = logging.getLogger("strangler.shadow")

MARK: Final = b"x-strangler-shadow"
DRY_RUN: Final = b"x-strangler-dry-run"
FLUSH_INTERVAL: Final = 0.5
MAX_UNSTORED: Final = 10_000  # results kept while the store is down; older ones are dropped
FLUSH_MAX: Final = 1_000  # results per write: an embedded store's write runs on the loop
SHED_FOLD: Final = 1024  # paths a lane counts sheds of per method before they are folded
LATENCY_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(eq=False)
class Lane:
    """One route's mirroring state: its sampler and its bound on work in flight.

    Kept samples wait in ``queue``; up to ``shadow.concurrency`` drain tasks take them
    one after another, so a busy lane starts no task per sample."""

    route: str
    shadow: Shadow
    rules: Rules
    sampler: Sampler
    owner: Mirror
    waiting: int = 0  # submitted and not finished (in flight + queued)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # its drain tasks
    drains: int = 0  # drain tasks still taking samples (a finished one may linger in tasks)
    queue: deque[Sample] = field(default_factory=deque)
    capacity: int = field(init=False)  # ``waiting`` at which samples are shed
    # method -> path -> sheds not yet counted; the route's, shared with the lanes it replaced
    shed: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.capacity = self.shadow.concurrency + self.shadow.queue

    @property
    def max_body_bytes(self) -> int:
        return self.shadow.max_body_bytes

    def submit(self, sample: Sample) -> None:
        self.owner.submit(self, sample)

    def skip(self, method: str, path: str, reason: str) -> None:
        self.owner.skip(self, method, path, reason)

    @property
    def full(self) -> bool:
        return self.waiting >= self.capacity


class _TooLarge(Exception):
    pass


class Mirror:
    def __init__(
        self,
        backends: dict[str, Backend],
        registry: Registry,
        store: ResultStore | None = None,
        transport: Transport | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.backends = backends
        self.store = store
        self.transport = transport or PooledTransport()
        self.wall = wall
        self.lanes: dict[str, Lane] = {}
        self.pace = Pace()
        self.comparisons = registry.counter(
            "strangler_shadow_comparisons_total",
            "Shadow samples by route and result (match, differ, error, shed, skipped).",
            ("route", "result"),
        )
        self.latency = registry.histogram(
            "strangler_shadow_latency_seconds",
            "Shadow backend response time.",
            ("route", "backend"),
            LATENCY_BUCKETS,
        )
        self.dropped = registry.counter(
            "strangler_shadow_results_dropped_total",
            "Results not stored because the result store was unavailable too long.",
        )
        self._unstored: list[Result] = []
        self._counts: dict[tuple[str, str, str, str, str], int] = {}
        self._writer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._store_ready = False

    # -- configuration -----------------------------------------------------------------

    def reconfigure(self, backends: dict[str, Backend]) -> None:
        """A new configuration: lanes whose shadow block changed start afresh."""
        self.backends = backends

    def _lane(self, route: Route) -> Lane:
        shadow = route.shadow
        assert shadow is not None
        lane = self.lanes.get(route.name)
        if lane is not None and lane.shadow is not shadow and lane.shadow == shadow:
            lane.shadow = shadow  # a reload with the same block: keep the lane
        if lane is None or lane.shadow is not shadow:
            lane = Lane(
                route.name,
                shadow,
                Rules.build(shadow.ignore, shadow.numeric_tolerance),
                Sampler(shadow.percent),
                self,
                shed={} if lane is None else lane.shed,  # what the old lane sheds still counts
            )
            self.lanes[route.name] = lane
        return lane

    # -- hot path ------------------------------------------------------------------------

    def lane(
        self, route: Route, method: str, path: str, served: str, replayable: bool
    ) -> Lane | None:
        """The lane to mirror this request on, or None (not sampled, skipped or shed)."""
        shadow = route.shadow
        if shadow is None or method not in shadow.methods:
            return None
        lane = self._lane(route)
        if not lane.sampler.take():
            return None
        if served == shadow.backend:
            self.skip(lane, method, path, "same-backend")
            return None
        if not replayable:
            self.skip(lane, method, path, "request-body-streamed")
            return None
        if lane.waiting >= lane.capacity:  # shed: one comparison and one count
            self._shed_one(lane, method, path)
            return None
        return lane

    def skip(self, lane: Lane, method: str, path: str, reason: str) -> None:
        self._count(lane.route, method, path, "skipped", reason)

    def _count(
        self, route: str, method: str, path: str, outcome: str, reason: str, n: int = 1
    ) -> None:
        # Metrics and endpoints are updated at flush.
        key = (route, method, path, outcome, reason)
        self._counts[key] = self._counts.get(key, 0) + n

    def _shed_one(self, lane: Lane, method: str, path: str) -> None:
        # The hot path of a shed sample (under load, nearly every request): one count keyed
        # by the path (a string, whose hash Python keeps), not a five-part tuple key.  The
        # counts are folded at flush, or when a method's dict holds SHED_FOLD paths.
        paths = lane.shed.get(method)
        if paths is None:
            paths = lane.shed[method] = {}
        paths[path] = paths.get(path, 0) + 1
        if len(paths) >= SHED_FOLD:
            self._fold_shed(lane)

    def _fold_shed(self, lane: Lane) -> None:
        for method, paths in lane.shed.items():
            for path, n in paths.items():
                self._count(lane.route, method, path, "shed", "queue-full", n)
        lane.shed.clear()  # in place: lanes a reload replaced hold the same dict

    def submit(self, lane: Lane, sample: Sample) -> None:
        """Mirror ``sample`` in the background (shed when the lane filled up meanwhile).
        On the primary's turn: a queue append, and a task only when the lane has fewer
        drain tasks than ``shadow.concurrency``."""
        if lane.waiting >= lane.capacity:
            self._shed_one(lane, sample.method, sample.path)
            return
        lane.waiting += 1
        lane.queue.append(sample)
        if lane.drains < lane.shadow.concurrency:
            lane.drains += 1
            task = spawn(self._drain(lane), name=f"shadow:{lane.route}")
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)

    # -- background ------------------------------------------------------------------------

    async def _drain(self, lane: Lane) -> None:
        """Mirror the lane's queued samples one after another until none is left."""
        queue = lane.queue
        try:
            while queue:
                sample = queue.popleft()
                try:
                    await self._one(lane, sample)
                except Exception:  # noqa: BLE001 - one sample's bug must not stop the lane
                    log.exception("mirroring %s %s failed", sample.method, sample.path)
                finally:
                    lane.waiting -= 1
        finally:
            lane.drains -= 1  # in the turn that found the queue empty: no sample strands

    async def _one(self, lane: Lane, sample: Sample) -> None:
        shadow = lane.shadow
        backend = self.backends.get(shadow.backend)
        if backend is None:
            return self._error(lane, sample, f"unknown backend {shadow.backend}", None)
        start = time.monotonic()
        try:
            reply = await self._call(backend, sample, shadow, b"1")
        except _TooLarge:
            return self._count(lane.route, sample.method, sample.path, "skipped", "too-large")
        except (UpstreamError, TimeoutError) as exc:
            kind = exc.kind if isinstance(exc, UpstreamError) else "timeout"
            took = time.monotonic() - start
            return self._error(lane, sample, f"shadow {kind}: {exc}".strip(), took)
        took = time.monotonic() - start
        self.latency.observe((lane.route, shadow.backend), took)
        secondary: Reply | None = None
        served = self.backends.get(sample.served)
        if shadow.noise.secondary and sample.method in SAFE_METHODS and served is not None:
            try:
                secondary = await self._call(served, sample, shadow, b"secondary")
            except (UpstreamError, TimeoutError, _TooLarge) as exc:
                log.debug("secondary call failed: %s", exc)
        await self.pace.turn()  # the comparison (and the next sample's call): one per turn
        primary = Reply(sample.status, _decoded(sample.response_headers), sample.response_body)
        noise = None if secondary is None else compare(primary, secondary, lane.rules)
        self._compared(lane, sample, reply, took, compare(primary, reply, lane.rules), noise)

    async def _call(self, backend: Backend, sample: Sample, shadow: Shadow, mark: bytes) -> Reply:
        headers = sample.headers
        rewritten = host_for(backend)
        if rewritten is not None:
            headers = with_host(headers, rewritten, b"")
        headers = [*headers, (MARK, mark)]
        if sample.method not in SAFE_METHODS:
            headers.append((DRY_RUN, b"1"))
        request = UpstreamRequest(
            sample.method.encode(),
            backend.base_path.encode("latin-1") + sample.target,
            headers,
            sample.body,
            None,
            sample.method == "HEAD",
        )
        async with asyncio.timeout(shadow.timeout):
            response = await self.transport.send(
                backend.host,
                backend.port,
                request,
                min(backend.connect_timeout, shadow.timeout),
                shadow.timeout,
                backend.pool_size,
            )
            try:
                parts: list[bytes] = []
                size = 0
                async for chunk in response.chunks():
                    size += len(chunk)
                    if size > shadow.max_body_bytes:
                        raise _TooLarge
                    parts.append(chunk)
                return Reply(response.status, _decoded(response.headers), b"".join(parts))
            finally:
                response.close()

    def _result(self, lane: Lane, sample: Sample, outcome: str, **fields: Any) -> Result:
        return Result(
            at=sample.at,
            route=lane.route,
            method=sample.method,
            endpoint=template(sample.path),
            outcome=outcome,
            request_id=sample.request_id,
            primary_backend=sample.served,
            shadow_backend=lane.shadow.backend,
            primary_status=sample.status,
            primary_ms=sample.seconds * 1000,
            **fields,
        )

    def _error(self, lane: Lane, sample: Sample, reason: str, took: float | None) -> None:
        self.comparisons.inc((lane.route, "error"))
        shadow_ms = None if took is None else took * 1000
        self._keep(self._result(lane, sample, "error", reason=reason, shadow_ms=shadow_ms))

    def _compared(
        self,
        lane: Lane,
        sample: Sample,
        reply: Reply,
        took: float,
        diffs: list[Difference],
        noise: list[Difference] | None,
    ) -> None:
        keep = lane.shadow.store_values
        noisy = None if noise is None else tuple(sorted({d.path for d in noise}))
        real = [d for d in diffs if noisy is None or d.path not in noisy]
        self.comparisons.inc((lane.route, "differ" if real else "match"))
        stored = tuple(
            FieldDiff(
                d.path,
                d.kind,
                d.primary if keep else hashed(d.primary),
                d.shadow if keep else hashed(d.shadow),
            )
            for d in diffs
        )
        self._keep(
            self._result(
                lane,
                sample,
                "compared",
                shadow_status=reply.status,
                shadow_ms=took * 1000,
                diffs=stored,
                noise=noisy,
                values_kept=keep,
            )
        )

    def _keep(self, result: Result) -> None:
        self._unstored.append(result)
        self._keep_bound()

    # -- results -------------------------------------------------------------------------

    def start(self) -> None:
        if self.store is not None and self._writer is None:
            self._stopping.clear()
            self._writer = spawn(self._write_loop(), name="shadow-results")

    async def _write_loop(self) -> None:
        """Flush every ``FLUSH_INTERVAL`` until :meth:`stop`, which sets ``_stopping``
        rather than cancelling, so that a write in progress finishes: a write
        cancelled in its ``COMMIT`` may or may not be stored, and its batch would be
        either lost or stored twice.  A backlog of ``FLUSH_MAX`` or more (after the store
        was down, or faster than one write per interval takes) is written one batch per
        loop turn, with the requests waiting in between, rather than in one long write."""
        backlog = False
        while not self._stopping.is_set():
            if backlog:
                await asyncio.sleep(0)
            else:
                try:
                    async with asyncio.timeout(FLUSH_INTERVAL):
                        await self._stopping.wait()
                except TimeoutError:
                    pass
            backlog = await self.flush() and len(self._unstored) >= FLUSH_MAX

    async def flush(self) -> bool:
        """Store up to ``FLUSH_MAX`` of the results that finished (kept for later if the
        store is down); True when a batch was stored."""
        for lane in self.lanes.values():
            if lane.shed:
                self._fold_shed(lane)
        if self._counts:
            counts, self._counts = self._counts, {}
            by_endpoint: dict[tuple[str, str, str, str, str], int] = {}
            for (route, method, path, outcome, reason), n in counts.items():
                self.comparisons.inc((route, outcome), n)
                key = (route, method, template(path), outcome, reason)
                by_endpoint[key] = by_endpoint.get(key, 0) + n
            now = self.wall()
            for (route, method, endpoint, outcome, reason), n in by_endpoint.items():
                self._keep(Result(now, route, method, endpoint, outcome, count=n, reason=reason))
        if self.store is None or not self._unstored:
            return False
        batch, self._unstored = self._unstored[:FLUSH_MAX], self._unstored[FLUSH_MAX:]
        try:
            if not self._store_ready:
                await self.store.init()
                self._store_ready = True
            await self.store.add(batch)
        except StoreError as exc:
            self._unstored[:0] = batch
            log.error("shadow results not stored yet (%d waiting): %s", len(self._unstored), exc)
            self._keep_bound()
            return False
        return True

    def _keep_bound(self) -> None:
        if len(self._unstored) > MAX_UNSTORED:
            excess = len(self._unstored) - MAX_UNSTORED
            del self._unstored[:excess]
            self.dropped.inc((), excess)

    async def stop(self, deadline: float = 5.0) -> None:
        """Let mirrored requests finish for up to ``deadline`` seconds, drop the rest, and
        store the results."""
        tasks = [t for lane in self.lanes.values() for t in lane.tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        writer, self._writer = self._writer, None
        if writer is not None:
            self._stopping.set()
            _, late = await asyncio.wait([writer], timeout=deadline)
            if late:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        while await self.flush() and self._unstored:
            pass  # all of it, one batch at a time, until a write fails
        await self.transport.aclose()
        if self.store is not None:
            await self.store.close()


def _decoded(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in headers)
