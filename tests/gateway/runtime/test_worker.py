"""A worker keeps serving its configuration when a reload finds an invalid file, and notes a
SIGHUP that arrives before it can reload."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from gateway.runtime.worker import EarlyHangups, Worker
from tests.eventually import wait_until

GOOD = """\
version: 1
backends: {legacy: {url: "http://127.0.0.1:9"}, new: {url: "http://127.0.0.1:10"}}
routes:
  - {name: all, split: {legacy: %d, new: %d}}
"""


def test_reload_swaps_on_valid_file_and_keeps_old_on_invalid(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(GOOD % (100, 0))
    worker = Worker(str(path), tmp_path)
    first = worker.proxy.generation
    path.write_text(GOOD % (0, 100))
    worker.reload()
    second = worker.proxy.generation
    assert second is not first and second.config.routes[0].split == (("legacy", 0), ("new", 100))
    path.write_text("version: 1\nroutes: [")
    worker.reload()
    assert worker.proxy.generation is second


def test_early_hangups_note_a_sighup_instead_of_dying() -> None:
    previous = signal.getsignal(signal.SIGHUP)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        os.kill(os.getpid(), signal.SIGHUP)  # pending while blocked, as in a starting worker
        hangups = EarlyHangups()  # installs the noting handler, then unblocks
        assert wait_until(lambda: hangups.pending, timeout=5)
        assert signal.SIGHUP not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.signal(signal.SIGHUP, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
