"""A command running in the background for tests with real processes (resume after kills, run-directory locks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

TIMEOUT = 240  # generous: the suite must pass on a loaded machine
# A plain Python process holding a run directory's lock until killed: cheaper than training
HOLDER = (
    "import sys, time; from pathlib import Path; from iwae_cli.runs.lock import hold_run_dir\n"
    "with hold_run_dir(Path(sys.argv[1])):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


class Background:
    """A background process, stdout and stderr to files in `logs`; `kill_leftovers` ends what a failed test left."""

    started: list[subprocess.Popen] = []

    def __init__(self, command: list[str], env: dict[str, str], logs: Path):
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / "stdout", logs / "stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(command, env=env, cwd=logs, stdout=out, stderr=err)
        Background.started.append(self.popen)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait(self) -> int:
        return self.popen.wait(timeout=TIMEOUT)

    def wait_for(self, predicate, what: str) -> None:
        """Poll until predicate() holds; fail if the process ends first."""
        deadline = time.monotonic() + TIMEOUT
        while not predicate():
            assert self.popen.poll() is None, f"ended before {what}:\n{self.stdout}\n{self.stderr}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    def succeed(self) -> None:
        assert self.wait() == 0, f"{self.stdout[-3000:]}\n{self.stderr[-3000:]}"
        assert "Traceback" not in self.stderr


def kill_leftovers() -> None:
    """SIGKILL every started process still running (it also ends a SIGSTOPped one), except those marked
    `keep` (shared by several tests)."""
    for popen in Background.started:
        if popen.poll() is None and not getattr(popen, "keep", False):
            popen.kill()
            popen.wait()
    Background.started[:] = [p for p in Background.started if p.poll() is None]


def hold_lock(run_dir: Path, logs: Path) -> Background:
    """A process that holds `run_dir`'s lock (as a training would) until killed, once it holds it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = Background([sys.executable, "-c", HOLDER, str(run_dir)], env, logs)
    holder.wait_for(lambda: "held" in holder.stdout, "the lock")
    return holder
