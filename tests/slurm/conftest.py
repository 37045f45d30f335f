"""The SLURM tests' cluster: the single-node one scripts/slurm_cluster.sh starts (CI starts it in .ci/run).

Without a running cluster the tests skip, saying how to start one; in CI (CI set) they fail instead, so a
cluster that did not come up cannot pass unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.background import Background

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
WAIT_SECONDS = 540  # a whole requeue test on a loaded 2-core machine, inside pytest's 600 s


@dataclass(frozen=True)
class Cluster:
    """The running cluster: its state directory and the environment that points SLURM's commands at it."""

    dir: Path

    def env(self, data_dir: Path, output_root: Path) -> dict[str, str]:
        """An `iwae` environment (the real data, output under output_root) that submits to this cluster."""
        env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "OC_CAUSE")}
        env.update(
            SLURM_CONF=str(self.dir / "slurm.conf"),
            PATH=f"{self.dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            IWAE_DATA_DIR=str(data_dir),
            IWAE_OUTPUT_ROOT=str(output_root),
            PYTHONUNBUFFERED="1",
        )
        return env

    def run(self, *command: str) -> str:
        """A SLURM command's output (scontrol, scancel, squeue), which must succeed."""
        env = {**os.environ, "SLURM_CONF": str(self.dir / "slurm.conf")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
        return done.stdout

    def restarts(self, job: str) -> int:
        """How many times SLURM has requeued the job (scontrol's Restarts=)."""
        return int(re.search(r"\bRestarts=(\d+)", self.run("scontrol", "show", "job", job)).group(1))


@pytest.fixture(scope="session")
def slurm_cluster() -> Cluster:
    """The cluster, checked to be up (scripts/slurm_cluster.sh status)."""
    cluster = Cluster(Path(os.environ.get("IWAE_SLURM_DIR", "/tmp/iwae-slurm")))
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    if status.returncode != 0:
        reason = f"no SLURM cluster is running ({(status.stderr or status.stdout).strip()})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run starts it with scripts/slurm_cluster.sh start", pytrace=False)
        pytest.skip(f"{reason}; start one with `sudo scripts/slurm_cluster.sh start` (docs/slurm.md)")
    return cluster


def submitted_jobs(sweep_dir: Path) -> list[str]:
    """The SLURM job ids submitit used under a sweep directory (one folder per job in .submitit/)."""
    folder = sweep_dir / ".submitit"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if any(p.glob("*_submitted.pkl")))


def iwae_process(args: list[str], env: dict[str, str], logs: Path, niced: bool = False) -> Background:
    """`python -m iwae_cli ARGS` in the background, its output in logs/. niced: a reference run without SLURM,
    which then takes only the CPU the cluster's jobs leave (their time-limited windows are wall-clock time)."""
    nice = ["nice", "-n", "10"] if niced else []
    return Background([*nice, sys.executable, "-m", "iwae_cli", *args], env, logs)


def unniced(process: Background) -> None:
    """Every thread of the process back at niceness 0. Raising priority needs CAP_SYS_NICE (root, as in CI);
    without it the process stays niced, as it was started."""
    for task in Path(f"/proc/{process.popen.pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), 0)


def finish(process: Background, what: str, watch=None) -> int:
    """Wait for the process (calling watch() meanwhile, e.g. to note the states a run passes through); its
    exit code. Fails with its output if it runs past WAIT_SECONDS. A niced reference run is waited for once the
    cluster's jobs are done: it gets normal priority back where permitted, so that other load cannot starve it."""
    unniced(process)
    deadline = time.monotonic() + WAIT_SECONDS
    while process.popen.poll() is None:
        assert time.monotonic() < deadline, (
            f"{what} still running:\n{process.stdout[-2000:]}\n{process.stderr[-3000:]}"
        )
        if watch is not None:
            watch()
        time.sleep(0.2)
    return process.popen.returncode
