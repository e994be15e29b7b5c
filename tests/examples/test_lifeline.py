"""examples.lifeline: a command started through it dies with the process that started it,
is not started at all when that process is already gone, and otherwise runs as itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from examples.lifeline import USAGE, main, parse, wrap
from tests.eventually import wait_until

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_parse_reads_the_parent_and_the_command() -> None:
    assert parse(["42", "--", "sleep", "1"]) == (42, ["sleep", "1"])
    with pytest.raises(ValueError, match="usage"):
        parse(["42", "sleep"])
    with pytest.raises(ValueError, match="PARENT_PID must be a process id, not 'me'"):
        parse(["me", "--", "true"])


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["42"]) == 2
    assert capsys.readouterr().err == f"lifeline: {USAGE}\n"


def test_the_command_runs_as_itself() -> None:
    done = subprocess.run(wrap(["sh", "-c", "echo hello; exit 3"]), env=ENV, capture_output=True)
    assert (done.returncode, done.stdout) == (3, b"hello\n")


def test_a_parent_already_gone_means_the_command_never_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    # pid 1 is not this child's parent: as if the parent had died before prctl ran.
    done = subprocess.run(
        wrap(["touch", str(marker)], parent=1), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr == "lifeline: parent 1 is gone; not starting touch\n"
    assert not marker.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_command_dies_when_its_parent_is_killed() -> None:
    # A parent that starts `sleep` through the lifeline, in its own session like the demo
    # does, prints the child's pid and waits; SIGKILL gives it no chance to clean up.
    parent_code = textwrap.dedent(
        """
        import subprocess, sys, time
        from examples.lifeline import wrap
        child = subprocess.Popen(wrap(["sleep", "60"]), start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], env=ENV, stdout=subprocess.PIPE, text=True
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        wait_until(
            lambda: _alive(child) and Path(f"/proc/{child}/comm").read_text() == "sleep\n",
            message="the child to exec sleep",
        )
        parent.kill()
        parent.wait(10)
        wait_until(
            lambda: not _alive(child), timeout=30, message="the child to die with its parent"
        )
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
