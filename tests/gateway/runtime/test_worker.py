"""A worker keeps serving its configuration when a reload finds an invalid file, notes a
SIGHUP that arrives before it can reload, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import h11

from gateway.runtime.supervisor import bind
from gateway.runtime.worker import GC_YOUNG_THRESHOLD, Worker
from tests.eventually import wait_until
from tests.gateway.support import backends, config_text

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


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _one_response(sock: socket.socket) -> bytes:
    """Read exactly one whole response (head, body and, when chunked, the last chunk), so
    that nothing of it is left in the socket for a later read to find."""
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("host", "h")]))
    raw = b""
    while True:
        event = parser.next_event()
        if isinstance(event, h11.EndOfMessage):
            return raw
        if event is h11.NEED_DATA:
            piece = sock.recv(65536)
            assert piece, f"the connection closed before the whole answer: {raw!r}"
            raw += piece
            parser.receive_data(piece)


def test_sigterm_drains_a_worker(tmp_path: Path) -> None:
    """A worker on SIGTERM stops accepting, closes idle connections, finishes the request
    in flight (its answer says connection: close) and exits 0."""
    with backends("legacy") as b:
        path = tmp_path / "routes.yaml"
        path.write_text(
            config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        )
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        argv = [sys.executable, "-m", "gateway.runtime.worker", "--fd", str(sock.fileno())]
        argv += ["-c", str(path), "--metrics-dir", str(tmp_path)]
        proc = subprocess.Popen(argv, pass_fds=[sock.fileno()])
        with ExitStack() as stack:
            stack.callback(sock.close)
            stack.callback(_reap, proc)
            wait_until(lambda: list(tmp_path.glob("metrics-*.json")), message="the worker to start")
            idle = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            idle.sendall(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
            first = _one_response(idle)
            assert first.startswith(b"HTTP/1.1 200") and b'"path": "/first"' in first
            busy = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            busy.sendall(b"GET /slow/700 HTTP/1.1\r\nHost: h\r\n\r\n")
            wait_until(lambda: b["legacy"].server.server_state.connections, message="in flight")
            proc.send_signal(signal.SIGTERM)
            idle.settimeout(5)
            assert idle.recv(1) == b""  # the idle connection is closed at once
            busy.settimeout(10)
            answer = b""
            while piece := busy.recv(65536):
                answer += piece
            assert answer.startswith(b"HTTP/1.1 200") and b"connection: close\r\n" in answer
            assert b'"path": "/slow/700"' in answer
            assert proc.wait(20) == 0


async def test_a_started_worker_freezes_what_exists_and_collects_young_objects_less_often(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(GOOD % (100, 0))
    worker = Worker(str(path), tmp_path)
    before = gc.get_threshold()
    try:
        await worker._started()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert GC_YOUNG_THRESHOLD > before[0]
    finally:
        await worker._stopping()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        gc.unfreeze()
        gc.set_threshold(*before)
