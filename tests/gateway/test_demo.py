"""``strangler demo`` as a real process: broker, monolith, order service, relay and gateway
come up, writes are captured and reach the read model, shadowed reads match, and Ctrl-C
stops every process it started."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(5)]
    config = tmp_path / "routes.yaml"
    source = (ROOT / "routes.yaml").read_text()
    config.write_text(
        source.replace("127.0.0.1:8080", f"127.0.0.1:{ports[0]}")
        .replace("127.0.0.1:9901", f"127.0.0.1:{ports[1]}")
        .replace("127.0.0.1:9001", f"127.0.0.1:{ports[2]}")
        .replace("127.0.0.1:9002", f"127.0.0.1:{ports[3]}")
        .replace("127.0.0.1:9092", f"127.0.0.1:{ports[4]}")
        .replace("sqlite:///./strangler-outbox.db", f"sqlite:///{tmp_path}/outbox.db")
        + "\n# spool for the test\n"
    )
    text = config.read_text().replace(
        f'outbox: {{url: "sqlite:///{tmp_path}/outbox.db"}}',
        f'outbox: {{url: "sqlite:///{tmp_path}/outbox.db", spool: "{tmp_path}/spool"}}',
    )
    config.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "-c", str(config)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 90
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Ctrl-C stops everything" in line or proc.poll() is not None:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert "POST /api/orders -> 201" in output, output
    assert '"orders-writes": {"legacy": 6}' in output, output
    # the events reached the new service's read model, and its answers match legacy's
    assert "the order service's read model has caught up: 3 orders" in output, output
    assert "matched" in output and "differing 0" in output, output
    assert proc.returncode == 0
    leftovers = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
