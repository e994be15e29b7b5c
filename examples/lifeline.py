"""Run a command that dies with the process that started it.

``python -m examples.lifeline PARENT_PID -- COMMAND...`` asks Linux to send this process
SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, which survives ``exec``), then checks
that its parent is still PARENT_PID (the parent may have died before the request was
made, and then no signal would ever come), and only then replaces itself with COMMAND.
The demo starts every child this way, so a demo killed with SIGKILL leaves nothing
running.  On other systems COMMAND simply runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
USAGE = "usage: python -m examples.lifeline PARENT_PID -- COMMAND [ARG...]"


def wrap(argv: Sequence[str], parent: int | None = None) -> list[str]:
    """The argv that runs ``argv`` tied to ``parent`` (default: this process)."""
    pid = os.getpid() if parent is None else parent
    return [sys.executable, "-m", "examples.lifeline", str(pid), "--", *argv]


def parse(args: Sequence[str]) -> tuple[int, list[str]]:
    """``PARENT_PID -- COMMAND...`` into the pid and the command; ValueError names the fault."""
    if len(args) < 3 or args[1] != "--":
        raise ValueError(USAGE)
    try:
        parent = int(args[0])
    except ValueError:
        raise ValueError(f"PARENT_PID must be a process id, not {args[0]!r}") from None
    return parent, list(args[2:])


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` when the parent dies; False where that is not offered."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parent, command = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"lifeline: {exc}", file=sys.stderr)
        return 2
    die_with_parent()
    if os.getppid() != parent:
        print(f"lifeline: parent {parent} is gone; not starting {command[0]}", file=sys.stderr)
        return 1
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"lifeline: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
