"""The demo's checkout part on the demo's own setup (an SQLite outbox and its relay, the
real broker): one checkout completes, the declined one is compensated, both timelines
are printed, and ``strangler saga list`` run with that routes.yaml finds them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from examples import demo
from gateway.config import load_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_prints_a_paid_and_a_compensated_checkout(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "routes.yaml"
    config_path.write_text(
        (ROOT / "routes.yaml")
        .read_text()
        .replace("127.0.0.1:9092", kafka_bootstrap)
        .replace("sqlite:///./strangler-outbox.db", f"sqlite:///{tmp_path}/outbox.db")
    )
    config = load_file(str(config_path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "outbox", "relay", "-c", str(config_path)],
            cwd=ROOT,
        )
    ]
    try:
        assert demo.checkouts(config, procs, seconds=120)
    finally:
        demo._stop(procs)
    out = capsys.readouterr().out
    assert "checkout order-" in out
    assert ": completed (version 4)" in out, out
    assert ": compensated (version 4) -- pay failed: PaymentFailed" in out, out
    assert "ReleaseInventory" in out and "OrderShipped" in out
    listed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "saga", "list", "-c", str(config_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "completed" in listed.stdout and "compensated" in listed.stdout
