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
from dataclasses import dataclass
from pathlib import Path

from gateway.capture import CompiledRule, Doubt, Event, Exchange, capture
from gateway.journal import Journal, orphans, read_orphan
from gateway.metrics import Registry
from gateway.outbox import OutboxError, OutboxStore
from gateway.tasks import spawn

log = logging.getLogger("strangler.capture")
COMMIT_WAIT = 2.0  # longest a response waits for its event to be stored
RETRY_EVERY = 1.0


@dataclass(slots=True)
class Ticket:
    """A captured request between its intent and its outcome."""

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
        if self._task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(self._flush_until_idle(), deadline)
            except (TimeoutError, OutboxError):
                log.warning("outbox writes still pending at shutdown; they stay in the journal")
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.journal.close()

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
        self.journal.intent(request_id, route, method, path, rule.rule.event)
        return Ticket(request_id, route, method, path, rule, params)

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
        )
        self.captured.inc(("doubt",))
        self._queue.append((ticket.request_id, doubt, None))
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
                )
                if reason
                else None
            )
        else:
            result = capture(ticket.rule, ticket.params, exchange)
        if result is None:
            self.captured.inc(("none",))
            self._settle.append(ticket.request_id)
            self._wake.set()
            return
        self.captured.inc(("event" if isinstance(result, Event) else "doubt",))
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append((ticket.request_id, result, waiter))
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), COMMIT_WAIT)
        except TimeoutError:
            log.warning("outbox slow: answering before event %s was stored", ticket.request_id)

    # the writer task -------------------------------------------------------
    async def _run(self) -> None:
        self._adopt_orphans()
        while True:
            if not (self._queue or self._settle):
                try:
                    await asyncio.wait_for(self._wake.wait(), RETRY_EVERY)
                except TimeoutError:
                    pass
                self._wake.clear()
            await self._step()

    async def _flush_until_idle(self) -> None:
        while self._queue or self._settle or self._spooled:
            await self._step()
            if self._spooled and self.degraded:
                raise OutboxError("outbox unavailable")

    async def _step(self) -> None:
        batch, self._queue = self._queue, []
        settle, self._settle = self._settle, []
        if self._spooled:
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
            except (OutboxError, TimeoutError) as exc:
                self._degrade(exc)
                self._spool(batch)
        elif batch:
            self._spool(batch)
        for _, _, waiter in batch:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self.journal.settle(settle)
        if self._spooled:
            await asyncio.sleep(0)  # let requests run between drain attempts

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
            except (OutboxError, TimeoutError) as exc:
                self._degrade(exc)
                await asyncio.sleep(RETRY_EVERY)
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
