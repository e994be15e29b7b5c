"""The capture journal: a local append-only file per worker that makes capture crash-safe.

The monolith commits before the gateway sees its answer, so a gateway dying in
between, or an outbox database that is down, must not lose the write without
trace.  For every request that a capture rule covers:

1. an *intent* line is appended before the request is forwarded;
2. after the answer, the event (or doubt) goes to the outbox database and a
   *settled* line follows; if the database cannot take it, the event itself is
   appended (*spooled*) and moved to the database, in order, once it is back.

Each append is one ``write(2)`` on an ``O_APPEND`` descriptor: it survives the
process being killed (it is in the kernel's page cache), though not a power
loss; fsync per request would cost milliseconds.  A worker holds an ``flock``
on its own file; any file whose lock is free belongs to a dead worker and is
recovered: its spooled entries are stored, and intents that never settled
become in-doubt entries.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.capture.rules import Doubt, Event

COMPACT_BYTES = 8 * 1024 * 1024


@dataclass
class Replay:
    """What a journal file still owes the outbox, in the order it was written."""

    items: list[tuple[str, Event | Doubt]] = field(default_factory=list)  # (capture id, entry)

    @property
    def events(self) -> list[Event]:
        return [e for _, e in self.items if isinstance(e, Event)]

    @property
    def doubts(self) -> list[Doubt]:
        return [d for _, d in self.items if isinstance(d, Doubt)]


def replay(lines: Iterable[str], stopped: bool) -> Replay:
    """Fold journal lines into what is still owed.  With ``stopped`` (the writer is gone),
    intents without an outcome become doubts."""
    intents: dict[str, dict[str, object]] = {}
    spooled: dict[str, Event | Doubt] = {}
    order: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line from a crash mid-write
        kind = record.get("k")
        if kind == "i":
            intents[record["r"]] = record
        elif kind == "s":
            rid = record["r"]
            intents.pop(rid, None)
            entry: Event | Doubt = (
                Event.from_json(record["ev"]) if "ev" in record else Doubt.from_json(record["db"])
            )
            spooled[rid] = entry
            order.append(rid)
        elif kind == "d":
            for rid in record["r"]:
                intents.pop(rid, None)
                spooled.pop(rid, None)
    out = Replay([(rid, spooled[rid]) for rid in order if rid in spooled])
    if stopped:
        for rid, intent in intents.items():
            out.items.append(
                (
                    rid,
                    Doubt(
                        request_id=str(intent.get("q", rid)),
                        route=str(intent.get("route")),
                        method=str(intent.get("m")),
                        path=str(intent.get("p")),
                        status=None,
                        reason="gateway stopped before the legacy answer was known",
                        event_type=str(intent.get("e")),
                        occurred_at=float(str(intent.get("t"))),
                        capture_id=rid,
                    ),
                )
            )
    return out


class Journal:
    """This worker's journal file."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"journal-{name or os.getpid()}.log"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.open = 0  # intents and spooled entries not yet settled

    def _append(self, record: dict[str, object]) -> None:
        os.write(self.fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def intent(
        self, capture_id: str, route: str, method: str, path: str, event: str, request_id: str = ""
    ) -> None:
        """Before forwarding: keyed by the gateway's ``capture_id`` (unique per request);
        ``request_id`` is the request's X-Request-Id, kept for the operator."""
        self._append(
            {
                "k": "i",
                "r": capture_id,
                "q": request_id or capture_id,
                "route": route,
                "m": method,
                "p": path,
                "e": event,
                "t": time.time(),
            }
        )
        self.open += 1

    def spool(self, capture_id: str, entry: Event | Doubt, adopted: bool = False) -> None:
        """Keep an entry the outbox could not take yet; ``adopted`` when it comes from a
        dead worker's journal (so it had no intent here)."""
        key = "ev" if isinstance(entry, Event) else "db"
        self._append({"k": "s", "r": capture_id, key: entry.to_json()})
        if adopted:
            self.open += 1

    def settle(self, capture_ids: list[str]) -> None:
        if not capture_ids:
            return
        self._append({"k": "d", "r": capture_ids})
        self.open -= len(capture_ids)
        if self.open <= 0:
            self.open = 0
            if os.fstat(self.fd).st_size > COMPACT_BYTES:
                os.ftruncate(self.fd, 0)  # everything in it is settled

    def close(self) -> None:
        os.close(self.fd)


def orphans(directory: Path) -> list[Path]:
    """Journal files whose writer is gone (their lock is free)."""
    out = []
    for path in sorted(directory.glob("journal-*.log")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live worker holds it
        finally:
            os.close(fd)
        out.append(path)
    return out


def read_orphan(path: Path) -> Replay:
    return replay(path.read_text(errors="replace").splitlines(), stopped=True)
