"""Run directories: their status and metrics files, finding them, and the table `iwae runs` prints.

A run directory holds `config.yaml` (the resolved configuration), `checkpoint.pt`, `train_log.csv`,
`status.json` (running / interrupted / requeued / failed / done; requeued: stopped with a checkpoint by a SLURM
time limit or preemption, its job handed back to submitit to run again) and `metrics.json` (everything a table
row needs).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from iwae_cli.core.atomic import atomic_write_json, update_json
from iwae_cli.errors import RunError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.lock import LOCK_NAME, lock_owner
from iwae_cli.runs.processes import pid_alive

STATUS_NAME = "status.json"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"


def write_status(run_dir: Path, state: str, message: str | None = None) -> None:
    """Record the run's state, with the process that set it (so a killed run can be told from a running one)."""
    atomic_write_json(
        run_dir / STATUS_NAME,
        {
            "state": state,
            "message": message,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": time.time(),
        },
    )


def record_metrics(run_dir: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge `updates` into the run's metrics.json atomically, keeping the fields it does not name."""
    return update_json(run_dir / METRICS_NAME, updates)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from disk, or {} if the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_state(run_dir: Path) -> str:
    """done, running, interrupted, requeued, failed or new; a 'running' run whose process is gone counts as
    interrupted."""
    status = read_json(run_dir / STATUS_NAME)
    state = status.get("state", "new")
    if state == "running" and status.get("host") == socket.gethostname() and not pid_alive(status.get("pid")):
        return "interrupted"
    return state


def run_state_with_lock(run_dir: Path) -> str:
    """run_state, corrected by the run directory's lock (iwae_cli.runs.lock), which also sees processes on other
    hosts: 'running' while any live process holds the lock (whatever status.json says, e.g. a 'done' run that
    another process is re-checking), and 'interrupted' for a 'running' status that no process holds (its owner
    died). A directory never locked (trained before locks existed) gets plain run_state."""
    if lock_owner(run_dir) is not None:
        return "running"
    state = run_state(run_dir)
    if state == "running" and (Path(run_dir) / LOCK_NAME).exists():
        return "interrupted"
    return state


def find_runs(root: Path) -> list[Path]:
    """Every run directory (one holding config.yaml) below root, sorted by path."""
    if not root.exists():
        return []
    return sorted(p.parent for p in root.rglob(CONFIG_NAME) if ".hydra" not in p.parts)


def latest_run(root: Path) -> Path:
    """The run under root whose checkpoint was written last."""
    candidates = [p for p in find_runs(root) if (p / CHECKPOINT_NAME).exists()]
    if not candidates:
        raise RunError(
            f"no trained runs under {root}: train one (iwae train ...) or pass run=<a run directory>"
        )
    return max(candidates, key=lambda p: (p / CHECKPOINT_NAME).stat().st_mtime)


def resolve_run_dir(run: str | os.PathLike | None, output_root: str | os.PathLike) -> Path:
    """The run directory named by `run=` (or the latest run), checked to hold a config and a checkpoint."""
    path = latest_run(Path(output_root) / "runs") if run in (None, "") else Path(run).expanduser().resolve()
    if not path.is_dir():
        raise RunError(f"run directory {path} does not exist; list runs with `iwae runs`")
    if not (path / CONFIG_NAME).exists() or not (path / CHECKPOINT_NAME).exists():
        raise RunError(
            f"{path} has no config.yaml and checkpoint.pt; it is not a trained run (see `iwae runs`)"
        )
    return path
