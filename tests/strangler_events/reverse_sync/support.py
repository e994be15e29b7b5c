"""For the reverse sync's tests: the example monolith as a real process (stopped and
started again on the same port), the service's events on a real topic, and what the
monolith holds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler_events.envelope import Event
from strangler_events.reverse_sync.plan import SyncTarget
from tests.harness import free_port, wait_for_port

SOURCE = "order-service"


@dataclass
class Monolith:
    db: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "examples.legacy_monolith", "--port", str(self.port)]
            + ["--db", str(self.db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, 20, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None

    def orders(self) -> dict[int, dict[str, Any]]:
        return {o["id"]: o for o in self._rows("SELECT * FROM orders")}

    def applied(self) -> int:
        """Changes the reverse sync applied (the event ids the monolith recorded)."""
        try:
            [row] = self._rows("SELECT count(*) AS n FROM strangler_sync_applied")
        except sqlite3.OperationalError:  # not created yet
            return 0
        return int(row["n"])

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()


@contextmanager
def monolith(tmp: Path) -> Iterator[Monolith]:
    m = Monolith(tmp / "legacy.db")
    m.start()
    try:
        yield m
    finally:
        m.stop()


def target(legacy: str) -> SyncTarget:
    return SyncTarget(
        "order",
        f"{legacy}/api/orders/{{id}}",
        SOURCE,
        upserts=("OrderCreated", "OrderUpdated"),
        deletes=("OrderDeleted",),
    )


def order_events(
    orders: int, updates: int, deleted: int = 0, first_id: int = 1000
) -> tuple[list[Event], dict[int, dict[str, Any]]]:
    """The service's events for ``orders`` orders (ids from ``first_id``), each updated
    ``updates`` times, the last ``deleted`` then deleted; and the orders they leave."""
    events: list[Event] = []
    final: dict[int, dict[str, Any]] = {}
    for n in range(orders):
        ident = first_id + n
        order = {
            "id": ident,
            "customer": f"c{n}",
            "item": "book",
            "quantity": 0,
            "status": "new",
            "created_at": f"2026-01-01T00:00:00.{n:06d}+00:00",
            "updated_at": f"2026-01-01T00:00:00.{n:06d}+00:00",
        }
        events.append(_event("OrderCreated", ident, {"request": {}, "response": order}))
        for q in range(1, updates + 1):
            order = {**order, "quantity": q, "updated_at": f"2026-01-01T00:{q:02d}:00+00:00"}
            events.append(_event("OrderUpdated", ident, {"request": {}, "response": order}))
        if n >= orders - deleted:
            events.append(_event("OrderDeleted", ident, {}))
        else:
            final[ident] = order
    return events, final


def _event(kind: str, ident: int, payload: dict[str, Any]) -> Event:
    meta = {"source": SOURCE, "stream": f"order-{ident}"}
    return Event(str(uuid.uuid4()), kind, "order", str(ident), payload, metadata=meta)
