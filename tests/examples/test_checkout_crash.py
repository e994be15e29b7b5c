"""Crash drills: the saga process (runner and relay) SIGKILLed at each point of a step
(the payment step, between two others) -- inside the transition's transaction, after it
committed but before the relay published the command, after the broker acknowledged the
command but before the relay marked it published -- then restarted.  Every checkout
ends terminal and every command reached its participant's handler exactly once (effects
counted at the participant)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.eventually import eventually
from tests.examples.checkout_env import CheckoutEnv

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
STEP = "pay"


def saga_process(url: str, bootstrap: str, kill_at: str | None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "examples.checkout", "serve", "--database", url]
    argv += ["--bootstrap", bootstrap, "--relay", "--no-participants", "--step-timeout", "120"]
    if kill_at:
        argv += ["--kill-at", kill_at]
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("point", ["in-transaction", "before-publish", "after-publish"])
async def test_a_saga_killed_at_each_point_of_a_step_repeats_and_loses_no_command(
    pg_database: str, kafka_bootstrap: str, point: str
) -> None:
    async with CheckoutEnv(pg_database, kafka_bootstrap, relay=False, stock={"book": 50}) as env:
        for name in ("inventory", "payment", "shipping"):
            await env.start_participant(name)
        ids = await env.place(4, declined=[3])
        proc = saga_process(pg_database, kafka_bootstrap, f"{point}:{STEP}")
        try:
            code = await eventually(proc.poll, timeout=90, interval=0.1, message="the kill")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == -9, f"the saga process exited with {code}, not by SIGKILL"
        proc = saga_process(pg_database, kafka_bootstrap, None)
        try:
            found = await env.until_terminal(ids, timeout=90)
        finally:
            proc.terminate()
            proc.wait(30)
        assert [found[i].state for i in ids] == ["completed"] * 3 + ["compensated"]
        handled = await env.handled()
        ok, declined = ids[:3], ids[3]
        expected = {
            (o, c): 1 for o in ok for c in ("ReserveInventory", "ProcessPayment", "ShipOrder")
        }
        expected |= {
            (declined, c): 1 for c in ("ReserveInventory", "ProcessPayment", "ReleaseInventory")
        }
        assert handled == expected
        assert await env.available() == {"book": 47}
