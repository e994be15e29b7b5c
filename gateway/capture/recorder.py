"""The capture recorder: turns captured legacy writes into outbox rows on the request path.

One task owns writing, so events reach the database in the order their requests
were answered: it group-commits whatever is queued (many requests, one
transaction) and resolves each request's wait.  The proxy awaits that before it
answers the client, so a client that waits for one write before sending the next
gets their events in order (that is what per-aggregate order means here).

If the database fails or is slow, entries are spooled to the journal instead and
the answer goes out (fail-open); while anything is spooled, new entries are
spooled behind it, and the same task moves them to the database in order once it
is back.  With ``outbox.on_error: reject`` the gateway instead answers 503 before
forwarding a captured write while the outbox is down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from gateway.capture.journal import Journal, orphans, read_orphan
from gateway.capture.outbox import OutboxStore
from gateway.capture.rules import CompiledRule, Doubt, Event, Exchange, capture
from gateway.metrics.registry import Registry
from gateway.tasks import spawn

log = logging.getLogger("strangler.capture")
COMMIT_WAIT = 2.0  # longest a response waits for its event to be stored
RETRY_EVERY = 1.0


@dataclass(slots=True)
class Ticket:
    """A captured request between its intent and its outcome."""

    capture_id: str  # the gateway's own key: unique even when clients reuse request ids
    request_id: str
    route: str
    method: str
    path: str
    rule: CompiledRule
    params: dict[str, str]


class Recorder:
    def __init__(
        self,
        store: OutboxStore,
        journal_dir: Path,
        on_error: str = "open",
        max_body_bytes: int = 1_048_576,
        registry: Registry | None = None,
    ) -> None:
        self.store = store
        self.journal = Journal(journal_dir)
        self.journal_dir = journal_dir
        self.on_error = on_error
        self.max_body_bytes = max_body_bytes
        self.degraded = False
        self._queue: list[tuple[str, Event | Doubt, asyncio.Future[None] | None]] = []
        self._settle: list[str] = []
        self._spooled: list[tuple[str, Event | Doubt]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_drain = 0.0
        self._task: asyncio.Task[None] | None = None
        registry = registry or Registry()
        self.captured = registry.counter(
            "strangler_capture_total", "Captured writes by outcome.", ("outcome",)
        )
        self.outbox_errors = registry.counter(
            "strangler_outbox_errors_total", "Failed outbox writes (entries were spooled)."
        )
        self.spooled = registry.gauge(
            "strangler_capture_spooled", "Entries in the local spool waiting for the outbox."
        )

    # lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self._task = spawn(self._run(), name="capture-recorder")

    async def stop(self, deadline: float = 5.0) -> None:
        """Ask the writer to store what it holds and finish.  Only the writer task ever
        writes: two writers could each store and then drop the same spooled entries."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), deadline)
            except TimeoutError:
                log.warning("outbox writes still pending at shutdown; they stay in the journal")
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        self.journal.close()

    @property
    def backlog(self) -> int:
        """Captured entries not yet stored in the outbox (queued or spooled)."""
        return len(self._queue) + len(self._spooled)

    # the request path ----------------------------------------------------
    def rejecting(self) -> bool:
        return self.on_error == "reject" and self.degraded

    def begin(
        self,
        request_id: str,
        route: str,
        method: str,
        path: str,
        rule: CompiledRule,
        params: dict[str, str],
    ) -> Ticket:
        capture_id = uuid.uuid4().hex
        self.journal.intent(capture_id, route, method, path, rule.rule.event, request_id)
        return Ticket(capture_id, request_id, route, method, path, rule, params)

    def abandon(self, ticket: Ticket) -> None:
        """The request was cut short after its intent: record it as in doubt, without waiting."""
        doubt = Doubt(
            ticket.request_id,
            ticket.route,
            ticket.method,
            ticket.path,
            None,
            "request ended before the legacy answer was relayed",
            ticket.rule.rule.event,
            capture_id=ticket.capture_id,
        )
        self.captured.inc(("doubt",))
        self._queue.append((ticket.capture_id, doubt, None))
        self._wake.set()

    async def finish(self, ticket: Ticket, exchange: Exchange | None, reason: str = "") -> None:
        """Record the outcome; waits (bounded) until it is stored or spooled."""
        if exchange is None:
            result: Event | Doubt | None = (
                Doubt(
                    ticket.request_id,
                    ticket.route,
                    ticket.method,
                    ticket.path,
                    None,
                    reason,
                    ticket.rule.rule.event,
                    capture_id=ticket.capture_id,
                )
                if reason
                else None
            )
        else:
            result = capture(ticket.rule, ticket.params, exchange)
            if isinstance(result, Doubt):
                result.capture_id = ticket.capture_id
        if result is None:
            self.captured.inc(("none",))
            self._settle.append(ticket.capture_id)
            self._wake.set()
            return
        self.captured.inc(("event" if isinstance(result, Event) else "doubt",))
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append((ticket.capture_id, result, waiter))
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), COMMIT_WAIT)
        except TimeoutError:
            log.warning("outbox slow: answering before event %s was stored", ticket.request_id)

    # the writer task -------------------------------------------------------
    async def _run(self) -> None:
        self._adopt_orphans()
        loop = asyncio.get_running_loop()
        while True:
            if self._stopping and (self.degraded or not (self._queue or self._spooled)):
                # Whatever is still spooled stays in the journal for the next start.
                self.journal.settle(self._settle)
                return
            work = self._queue or self._settle
            drain_due = bool(self._spooled) and loop.time() >= self._next_drain
            if not (work or drain_due):
                wait = self._next_drain - loop.time() if self._spooled else RETRY_EVERY
                try:
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))
                except TimeoutError:
                    pass
                self._wake.clear()
                continue
            await self._step()

    async def _step(self) -> None:
        batch, self._queue = self._queue, []
        settle, self._settle = self._settle, []
        if self._spooled and asyncio.get_running_loop().time() >= self._next_drain:
            await self._drain()
        if batch and not self._spooled:
            try:
                await asyncio.wait_for(
                    self.store.append(
                        [e for _, e, _ in batch if isinstance(e, Event)],
                        [d for _, d, _ in batch if isinstance(d, Doubt)],
                    ),
                    COMMIT_WAIT,
                )
                settle += [rid for rid, _, _ in batch]
                self.degraded = False
            except Exception as exc:  # noqa: BLE001 - whatever it was, the entries are kept
                self._degrade(exc)
                self._spool(batch)
        elif batch:
            self._spool(batch)
        for _, _, waiter in batch:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self.journal.settle(settle)

    def _spool(self, batch: list[tuple[str, Event | Doubt, asyncio.Future[None] | None]]) -> None:
        for rid, entry, _ in batch:
            self.journal.spool(rid, entry)
            self._spooled.append((rid, entry))
        self.spooled.set((), len(self._spooled))

    def _degrade(self, exc: BaseException) -> None:
        if not self.degraded:
            log.error("outbox unavailable, spooling captured events locally: %s", exc)
        self.degraded = True
        self.outbox_errors.inc()

    async def _drain(self) -> None:
        """Move spooled entries to the outbox, oldest first."""
        while self._spooled:
            chunk = self._spooled[:500]
            try:
                await asyncio.wait_for(
                    self.store.append(
                        [e for _, e in chunk if isinstance(e, Event)],
                        [d for _, d in chunk if isinstance(d, Doubt)],
                    ),
                    COMMIT_WAIT,
                )
            except Exception as exc:  # noqa: BLE001 - they stay spooled
                self._degrade(exc)
                # New entries are spooled meanwhile; try again in a while, not per request.
                self._next_drain = asyncio.get_running_loop().time() + RETRY_EVERY
                return
            del self._spooled[: len(chunk)]
            self.journal.settle([rid for rid, _ in chunk])
            self.spooled.set((), len(self._spooled))
        if self.degraded:
            log.info("outbox is back; spool drained")
        self.degraded = False

    def _adopt_orphans(self) -> None:
        """Journals left by dead workers: take over what they owe (ahead of anything new,
        since it is older), then remove them.  The normal drain stores it."""
        adopted: list[tuple[str, Event | Doubt]] = []
        for path in orphans(self.journal_dir):
            if path == self.journal.path:
                continue
            owed = read_orphan(path)
            for rid, entry in owed.items:
                self.journal.spool(rid, entry, adopted=True)
            adopted += owed.items
            path.unlink(missing_ok=True)
            if owed.items:
                log.warning(
                    "recovered %d events and %d in-doubt writes from %s",
                    len(owed.events),
                    len(owed.doubts),
                    path.name,
                )
        self._spooled[:0] = adopted
        self.spooled.set((), len(self._spooled))
