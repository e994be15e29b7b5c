"""The demo as a real process: broker, monolith, order service, relay and gateway come up,
writes are captured and reach the read model, shadowed reads match, the order writes
move to the service and back (dry-run parity, the monolith kept in sync, reconcile 0);
Ctrl-C stops every process it started, and so does killing the demo outright (its
children die with it).  Run again in the same directory, it starts from empty data (its
broker kept nothing) and says so.  A broker it did not start is used, and the demo says
so."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from examples import demo
from gateway.config import load_file
from tests.eventually import GiveUp, wait_until
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops everything"


def _demo_config(tmp_path: Path) -> tuple[Path, list[int]]:
    """routes.yaml with every address moved to a free port, and those ports."""
    ports = [free_port() for _ in range(5)]
    config = tmp_path / "routes.yaml"
    source = (ROOT / "routes.yaml").read_text()
    outbox = f'outbox: {{url: "sqlite:///{tmp_path}/outbox.db", spool: "{tmp_path}/spool"}}'
    config.write_text(
        source.replace("127.0.0.1:8080", f"127.0.0.1:{ports[0]}")
        .replace("127.0.0.1:9901", f"127.0.0.1:{ports[1]}")
        .replace("127.0.0.1:9001", f"127.0.0.1:{ports[2]}")
        .replace("127.0.0.1:9002", f"127.0.0.1:{ports[3]}")
        .replace("127.0.0.1:9092", f"127.0.0.1:{ports[4]}")
        .replace('outbox: {url: "sqlite:///./strangler-outbox.db"}', outbox)
    )
    assert outbox in config.read_text()
    return config, ports


class DemoProcess:
    """The demo started as its own process in ``cwd``; its output is read in a thread so
    that waiting for a line is bounded in time."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> DemoProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill the demo and anything left in its directory, then close its output."""
        self.proc.kill()
        self.proc.wait(10)
        _kill_leftovers(self.cwd)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)

    def output(self) -> str:
        while not self._queue.empty():
            self.lines.append(self._queue.get_nowait())
        return "".join(self.lines)

    def all_output(self, timeout: float) -> str:
        """Everything it printed, once its output is closed (bounded by ``timeout``)."""
        self._reader.join(timeout)
        return self.output()

    def wait_for(self, text: str, timeout: float) -> str:
        def seen() -> bool:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                raise GiveUp(f"the demo exited with {self.proc.returncode}:\n{self.output()}")
            return False

        wait_until(seen, timeout=timeout, interval=0.1, message=f"the demo to print {text!r}")
        return self.output()


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _running_in(directory: Path) -> list[int]:
    """Live processes whose working directory is ``directory`` (the demo's children are)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    pids.append(int(entry.name))
            except OSError:  # gone, or a zombie
                continue
    return pids


def _kill_leftovers(directory: Path) -> None:
    for pid in _running_in(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.kafka  # the demo starts its own Kafka-protocol broker
def test_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    config, _ = _demo_config(tmp_path)
    with DemoProcess(["-m", "gateway.cli", "demo", "-c", str(config)], tmp_path) as run:
        run.wait_for(READY, timeout=180)
        run.proc.send_signal(signal.SIGINT)
        run.proc.wait(30)
        output = run.all_output(timeout=10)
        assert "POST /api/orders -> 201" in output, output
        assert '"orders-writes": {"legacy": 6}' in output, output
        # the events reached the new service's read model, and its answers match legacy's
        assert "the order service's read model has caught up: 3 orders" in output, output
        assert "matched" in output and "differing 0" in output, output
        # the writes moved: dry-run parity, cut-over, the monolith kept in sync, rollback
        parity = [line for line in output.splitlines() if "writes (dry run):" in line]
        assert len(parity) == 4 and all(line.endswith(": same") for line in parity), output
        assert "the monolith lists the 8 orders left, ids and timestamps alike: True" in output
        assert "reverse sync of order: 0 event(s) behind" in output, output
        assert "events captured from the monolith meanwhile: 0 (no echo)" in output, output
        assert "5 orders the monolith created, ids after the service's block" in output, output
        assert "found:    missing 0  stale 0  different 0  extra 0" in output, output
        assert "moving writes: stopped" not in output, output
        assert "was not started by this demo" not in output, output
        assert run.proc.returncode == 0
        leftovers = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True)
        assert leftovers.stdout.strip() == ""


@pytest.mark.kafka  # the demo starts its own Kafka-protocol broker
def test_the_demo_runs_again_in_the_same_directory(tmp_path: Path) -> None:
    """Its broker keeps nothing, so a second run starts from empty data, and says so."""
    config, _ = _demo_config(tmp_path)
    outputs = []
    for _ in range(2):
        with DemoProcess(["-m", "examples.demo", "-c", str(config)], tmp_path) as run:
            run.wait_for(READY, timeout=180)
            run.proc.send_signal(signal.SIGINT)
            run.proc.wait(30)
            outputs.append(run.all_output(timeout=10))
            assert run.proc.returncode == 0, outputs[-1]
    first, second = outputs
    assert "the order service's read model has caught up: 3 orders" in first, first
    assert "state of earlier runs" not in first, first
    assert "the order service's read model has caught up: 3 orders" in second, second
    [notice] = [line for line in second.splitlines() if "state of earlier runs" in line]
    assert notice.startswith(
        "  started an empty broker, so the state of earlier runs was reset: removed "
        "demo-data/legacy.db, demo-data/orders.db, "
    ), notice
    assert f"{tmp_path}/outbox.db" in notice, notice


def test_only_what_earlier_runs_left_is_removed(tmp_path: Path) -> None:
    config, _ = _demo_config(tmp_path)
    loaded = load_file(str(config))
    data = tmp_path / "demo-data"
    data.mkdir()
    (data / "orders.db").write_text("read model")
    (data / "orders.db-wal").write_text("its log")
    (data / "keep.txt").write_text("not the demo's")
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "segment").write_text("spooled")
    paths = [tmp_path / p if not p.is_absolute() else p for p in demo.earlier_state(loaded)]
    assert [p.name for p in paths] == ["legacy.db", "orders.db", "outbox.db", "spool"]
    removed = demo.remove_state(paths)
    assert [p.name for p in removed] == ["orders.db", "spool"]
    assert sorted(p.name for p in data.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "spool").exists()
    notice = demo.fresh_broker_notice(removed)
    assert notice.startswith("  started an empty broker, so the state of earlier runs was reset")


@pytest.mark.kafka  # the demo starts its own Kafka-protocol broker
def test_killing_the_demo_takes_its_children_with_it(tmp_path: Path) -> None:
    config, ports = _demo_config(tmp_path)
    with DemoProcess(["-m", "examples.demo", "-c", str(config)], tmp_path) as run:
        run.wait_for(READY, timeout=180)
        assert all(_accepts(port) for port in ports)  # gateway, admin, both apps, broker
        assert len(_running_in(tmp_path)) >= 6  # the demo, its five children, gateway workers
        run.proc.kill()
        run.proc.wait(10)

        def all_gone() -> bool:
            listening = [port for port in ports if _accepts(port)]
            alive = _running_in(tmp_path)
            assert not listening and not alive, f"still listening {listening}, alive {alive}"
            return True

        wait_until(all_gone, timeout=30, interval=0.2, message="the demo's children to exit")


def test_with_a_broker_it_did_not_start_nothing_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ports = _demo_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo-data").mkdir()
    (tmp_path / "demo-data" / "orders.db").write_text("read model")
    with socket.socket() as listener:  # something already listens on kafka.bootstrap
        listener.bind(("127.0.0.1", ports[4]))
        listener.listen()
        assert demo._prepare_broker(load_file(str(config))) is None
    assert (tmp_path / "demo-data" / "orders.db").read_text() == "read model"
    out = capsys.readouterr().out
    assert "was not started by this demo" in out and "state of earlier runs" not in out


def test_a_broker_it_did_not_start_is_used_and_named(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        assert demo._broker(f"127.0.0.1:{port}") is None
        assert time.monotonic() - started < 5
    out = capsys.readouterr().out
    assert f"a Kafka broker is already listening on 127.0.0.1:{port}" in out
    assert "was not started by this demo; using it" in out
    assert "may hold events from earlier runs" in out


def test_stopping_restores_the_signal_handlers_it_ignored() -> None:
    """_stop ignores SIGINT and SIGTERM while it stops the processes, then puts the handlers
    back: a caller must not leave its later child processes ignoring both."""
    from examples import demo

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    demo._stop([])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert before[0] is not signal.SIG_IGN
