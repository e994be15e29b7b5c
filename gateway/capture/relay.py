"""The outbox relay: publishes outbox rows to Kafka, in order, at least once.

One relay is active at a time (:meth:`OutboxStore.lead`); others wait as hot
standbys and take over when the leader's lock or lease goes.  Each round reads
the oldest unpublished rows, publishes them, and marks a row published only
after the broker acknowledged it, so a crash re-sends at most the work in
flight: the batch not yet acknowledged and the one whose marks were being
written (consumers dedupe on the event id).

Per aggregate, rows are marked published only up to the first one that failed:
a later row of the same aggregate that happened to be acknowledged is sent
again after the earlier one, so consumers never see them out of order.  Rows are
read past a seq whose transaction has not committed yet (PostgreSQL hands out seqs
at insert, so writers commit out of seq order); when such a row turns up below a
batch already read past, the rows read ahead are dropped and reading starts again
from the oldest unpublished row, so that it goes out before its aggregate's later
rows.  A row
the broker refuses outright (too large, ...) is parked: it blocks only its own
aggregate, shows in ``strangler outbox status``, and an operator can skip it.

While it leads, the relay writes a heartbeat through the store about once a second
(:class:`~gateway.capture.outbox.port.Heartbeat`: holder, how long it has led, events
published since, its last publish and its last error); it removes it when it resigns.
``strangler outbox status`` and the dashboard read it, and call it stale when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from gateway.capture.kafka_sink import PublishError
from gateway.capture.outbox import Heartbeat, OutboxError, OutboxStore, Row
from gateway.capture.rules import Event
from gateway.metrics.registry import Registry

log = logging.getLogger("strangler.relay")
BEAT_INTERVAL = 1.0  # seconds between heartbeats


class Sink(Protocol):
    """What the relay publishes through (the Kafka adapter, or a fake in unit tests)."""

    async def send(self, events: Sequence[Event]) -> Any:
        """Hand a batch over in order; returns a handle for :meth:`collect`."""

    async def collect(self, handle: Any) -> list[PublishError | None]:
        """Wait for the batch's acknowledgements; one result per event."""

    async def stop(self) -> None: ...


class Relay:
    def __init__(
        self,
        store: OutboxStore,
        sink: Sink,
        batch: int = 2000,
        lease: float = 5.0,
        retention: float = 7 * 86400.0,
        registry: Registry | None = None,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.batch = batch
        self.lease = lease
        self.retention = retention
        self.holder = holder or f"relay-{uuid.uuid4().hex[:12]}"
        self.stopping = asyncio.Event()
        r = registry or Registry()
        self.published = r.counter("strangler_relay_published_total", "Events published.")
        self.errors = r.counter(
            "strangler_relay_publish_errors_total", "Events not published, by kind.", ("kind",)
        )
        self.published.inc((), 0)  # exported at zero: increase() then sees the first event
        for kind in ("retriable", "refused"):
            self.errors.inc((kind,), 0)
        self.leader = r.gauge("strangler_relay_leader", "1 while this relay is the active one.")
        self.pending = r.gauge("strangler_outbox_pending", "Unpublished outbox rows.")
        self.lag = r.gauge("strangler_outbox_lag_seconds", "Age of the oldest unpublished row.")
        self._last_status = 0.0
        self._last_purge = 0.0
        self._last_beat = float("-inf")
        self._led_since = 0.0  # monotonic clock from here on
        self._led_published = 0
        self._last_publish: float | None = None
        self._last_error: tuple[str, float] | None = None

    async def run(self) -> None:
        backoff = 0.1
        while not self.stopping.is_set():
            try:
                if not await self.store.lead(self.holder, self.lease):
                    if self.leader.get():
                        log.warning("%s lost leadership", self.holder)
                    self.leader.set((), 0)
                    await self._sleep(min(1.0, self.lease / 3))
                    continue
                if not self.leader.get():
                    log.info("%s is the active relay", self.holder)
                    self._took_lease()
                self.leader.set((), 1)
                await self._housekeeping()
                sent = await self.pump()
                backoff = 0.1
                if sent == 0:
                    await self.store.wait_for_rows(0.5)
            except (OutboxError, PublishError) as exc:
                log.error("relay round failed (retrying in %.1fs): %s", backoff, exc)
                self._last_error = (f"round failed: {exc}", time.monotonic())
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                # A bug must not silently stop the relay: say so loudly and keep trying.
                log.exception("relay round crashed (retrying in %.1fs)", backoff)
                self._last_error = ("round crashed (see the relay's log)", time.monotonic())
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        self.leader.set((), 0)
        try:
            await self.store.resign(self.holder)
        except OutboxError:
            pass

    async def pump(self) -> int:
        """Publish until nothing is pending.  The next batch is read while the current one
        is encoded and acknowledged, and marking a batch overlaps sending the next; a batch
        is sent only after the one before it was fully acknowledged, so a failure can never
        let a later event of an aggregate overtake an earlier one.  At most two batches are
        ever unmarked yet acknowledged: the one being marked and the one after it."""
        total = 0
        rows = await self.store.pending(self.batch)
        marking: asyncio.Future[None] | None = None
        try:
            while rows and not self.stopping.is_set():
                handle, ahead = await self._send_reading_ahead(rows)
                results = await self.sink.collect(handle)
                if marking is not None:
                    await marking
                    marking = None
                done, transient = await self._settle(rows, results)
                total += len(rows)
                if len(done) < len(rows):
                    # Something failed: publish again from the oldest unpublished row.
                    await self.store.mark_published(done)
                    if transient is not None:
                        raise transient
                    ahead = await self.store.pending(self.batch)
                elif ahead and await self.store.late(rows[-1].seq, len(rows)):
                    # A row below this batch committed after the batch was read (its
                    # transaction took its seq first): ``ahead`` may hold a later row of
                    # its aggregate, so publish again from the oldest unpublished row.
                    await self.store.mark_published(done)
                    ahead = await self.store.pending(self.batch)
                else:
                    marking = asyncio.ensure_future(self.store.mark_published(done))
                rows = ahead
                await self._beat()
        except asyncio.CancelledError:
            if marking is not None:  # a mark that hangs must not hang the cancel too
                marking.cancel()  # (its batch is sent again by whoever pumps next)
                await asyncio.gather(marking, return_exceptions=True)
                marking = None
            raise
        finally:
            if marking is not None:
                await marking  # the last batch's mark lands before pump returns
        return total

    async def _send_reading_ahead(self, rows: list[Row]) -> tuple[Any, list[Row]]:
        """Hand ``rows`` to the sink while the store reads the batch after them (the
        database works on the query while this process encodes the records)."""
        reading = asyncio.ensure_future(self.store.pending(self.batch, after=rows[-1].seq))
        try:
            handle = await self.sink.send([r.event for r in rows])
        except BaseException:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            raise
        return handle, await reading

    async def _settle(
        self, rows: list[Row], results: list[PublishError | None]
    ) -> tuple[list[int], PublishError | None]:
        """Which rows to mark published (per aggregate, only up to its first failure)."""
        done: list[int] = []
        stuck: set[tuple[str, str]] = set()
        transient: PublishError | None = None
        for row, result in zip(rows, results, strict=True):
            aggregate = (row.event.aggregatetype, row.event.aggregateid)
            if aggregate in stuck:
                continue
            if result is None:
                done.append(row.seq)
                continue
            stuck.add(aggregate)
            self.errors.inc(("retriable" if result.retriable else "refused",))
            if result.retriable:
                transient = result
            else:
                log.error(
                    "event %s (%s %s) parked: %s",
                    row.event.id,
                    row.event.aggregatetype,
                    row.event.aggregateid,
                    result,
                )
                await self.store.mark_failed(row.seq, str(result))
                self._last_error = (f"event {row.event.id} parked: {result}", time.monotonic())
        self.published.inc((), len(done))
        if done:
            self._led_published += len(done)
            self._last_publish = time.monotonic()
        return done, transient

    def _took_lease(self) -> None:
        self._led_since = time.monotonic()
        self._led_published = 0
        self._last_publish = None
        self._last_beat = float("-inf")

    async def _beat(self) -> None:
        """Write the heartbeat when the last one is :data:`BEAT_INTERVAL` old."""
        now = time.monotonic()
        if now - self._last_beat < BEAT_INTERVAL:
            return
        self._last_beat = now
        error, error_at = self._last_error or ("", None)
        await self.store.heartbeat(
            Heartbeat(
                self.holder,
                self.lease,
                round(now - self._led_since, 3),
                self._led_published,
                None if self._last_publish is None else round(now - self._last_publish, 3),
                error,
                None if error_at is None else round(now - error_at, 3),
            )
        )

    async def _housekeeping(self) -> None:
        await self._beat()
        now = time.monotonic()
        if now - self._last_status > 5:
            self._last_status = now
            status = await self.store.status()
            self.pending.set((), status.pending)
            self.lag.set((), status.oldest_pending_age or 0.0)
        if now - self._last_purge > 60:
            self._last_purge = now
            purged = await self.store.purge(self.retention)
            if purged:
                log.info("removed %d published rows older than %.0fs", purged, self.retention)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass
