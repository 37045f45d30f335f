"""The table commands' child processes (training sweeps, switch-objective runs) and the signals they are owed.

Each child runs in a process group of its own, so that a signal sent to the table command alone (`kill PID`, a
scheduler's SIGTERM to one process) can be passed on to the child and to everything it started (a sweep's
joblib workers): each run then checkpoints and stops instead of training on after the command is gone. SIGINT
is passed on as well, since a terminal's Ctrl-C now reaches only the table command's group. A signal that the
command was started ignoring (SIGHUP under nohup) stays ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from types import FrameType

from iwae_cli.errors import IwaeError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(IwaeError):
    """The table command was signalled; its children checkpointed and stopped."""


class Children:
    """While open (in the main thread), the signals in FORWARDED reach every child started by `run`; on closing
    after one arrived, raises Stopped (exit 128 + the signal's number), which names the way to resume."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []
        self.signalled: int | None = None
        self.starting = threading.Lock()  # no child starts after a signal was forwarded
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Children:
        for signum in FORWARDED:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self.previous[signum] = signal.signal(signum, self.forward)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.signalled is not None:
            name = signal.Signals(self.signalled).name
            raise Stopped(
                f"stopped by {name}: the runs it started checkpointed and stopped; run the same command again "
                "to resume them (finished cells are kept)",
                exit_code=128 + self.signalled,
            ) from None

    def run(self, command: list[str]) -> int:
        """Start `command` in its own process group and wait for it; its exit code (128 + the signal's number,
        without starting it, once a signal has arrived)."""
        with self.starting:
            if self.signalled is not None:
                return 128 + self.signalled
            process = subprocess.Popen(command, start_new_session=True)
            self.running.append(process)
        return process.wait()

    def forward(self, signum: int, frame: FrameType | None) -> None:
        """Each child's group gets SIGINT, whatever arrived: a sweep's launcher (joblib) stops its workers and
        drops its queued jobs on an interrupt, as on a terminal's Ctrl-C, where SIGTERM would kill the launcher
        alone and leave its workers starting the queued jobs."""
        self.signalled = signum
        for process in self.running:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
