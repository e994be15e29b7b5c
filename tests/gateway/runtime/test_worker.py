"""A worker keeps serving its configuration when a reload finds an invalid file, and notes a
SIGHUP that arrives before it can reload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.runtime.worker import Worker

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


EARLY_HANGUP = """
import os, signal
from gateway.runtime.worker import EarlyHangups
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # as the supervisor starts a worker
os.kill(os.getpid(), signal.SIGHUP)  # pending while blocked
hangups = EarlyHangups()  # installs the noting handler, then unblocks
assert hangups.pending, "the early SIGHUP was not noted"
assert signal.SIGHUP not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
print("noted")
"""


def test_early_hangups_note_a_sighup_instead_of_dying() -> None:
    # In a process of its own: a signal sent to a process goes to any thread that does not
    # block it, and the test process has several (it would be killed, not the worker).
    done = subprocess.run(
        [sys.executable, "-c", EARLY_HANGUP], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "noted"), done.stderr
