"""The capture journal: replay folding, crash-safe appends and orphan recovery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.capture.journal import Journal, orphans, read_orphan, replay
from gateway.capture.rules import Doubt, Event


def event(n: int) -> Event:
    return Event(f"e{n}", "order", str(n), "OrderCreated", {"n": n}, 1.0, {"schema_version": 1})


def test_replay_keeps_spooled_in_order_and_turns_open_intents_into_doubts(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "a")
    journal.intent("r1", "orders", "POST", "/api/orders", "OrderCreated")
    journal.intent("r2", "orders", "POST", "/api/orders", "OrderCreated")
    journal.intent("r3", "orders", "PUT", "/api/orders/3", "OrderUpdated")
    journal.intent("r4", "orders", "PUT", "/api/orders/4", "OrderUpdated")
    journal.spool("r2", event(2))
    journal.spool("r1", event(1))
    journal.settle(["r3"])
    journal.spool("r4", Doubt("r4", "orders", "PUT", "/api/orders/4", 200, "no id"))
    journal.intent("r5", "orders", "POST", "/api/orders", "OrderCreated")
    lines = journal.path.read_text().splitlines()
    alive = replay(lines, stopped=False)
    assert [rid for rid, _ in alive.items] == ["r2", "r1", "r4"]
    stopped = replay([*lines, '{"k": "i", "r": "torn'], stopped=True)
    assert [rid for rid, _ in stopped.items] == ["r2", "r1", "r4", "r5"]
    assert [e.aggregateid for e in stopped.events] == ["2", "1"]
    last = stopped.doubts[-1]
    assert (last.request_id, last.reason) == (
        "r5",
        "gateway stopped before the legacy answer was known",
    )
    journal.close()


def test_live_journal_is_not_an_orphan_but_a_dead_ones_is(tmp_path: Path) -> None:
    mine = Journal(tmp_path, "mine")
    code = (
        "import sys; from pathlib import Path; from gateway.capture.journal import Journal;"
        "j = Journal(Path(sys.argv[1]), 'dead');"
        "j.intent('r9', 'orders', 'POST', '/api/orders', 'OrderCreated')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=os.getcwd())
    found = orphans(tmp_path)
    assert [p.name for p in found] == ["journal-dead.log"]
    owed = read_orphan(found[0])
    assert [d.request_id for d in owed.doubts] == ["r9"]
    mine.close()


def test_settled_journal_is_compacted(tmp_path: Path, monkeypatch: object) -> None:
    import gateway.capture.journal as journal_module

    journal_module.COMPACT_BYTES = 200
    try:
        journal = Journal(tmp_path, "c")
        for i in range(10):
            journal.intent(f"r{i}", "orders", "POST", "/api/orders", "OrderCreated")
        journal.settle([f"r{i}" for i in range(10)])
        assert journal.path.stat().st_size == 0
        journal.close()
    finally:
        journal_module.COMPACT_BYTES = 8 * 1024 * 1024
