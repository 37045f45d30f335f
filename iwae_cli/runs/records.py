"""Run directories: their status and metrics files, finding them, and the table `iwae runs` prints.

A run directory holds `config.yaml` (the resolved configuration), `checkpoint.pt`, `train_log.csv`,
`status.json` (running / interrupted / requeued / failed / done; requeued: stopped with a checkpoint by a SLURM
time limit or preemption, its job handed back to submitit to run again) and `metrics.json` (everything a table
row needs). A run whose records cannot be read (a file that is not valid JSON or YAML, a truncated checkpoint)
is `damaged`: `iwae runs` says so, and a command that needs it stops with one line naming the file (damage).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from iwae_cli.core.atomic import atomic_write_json, update_json
from iwae_cli.errors import RunError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME, DAMAGED_FIX, readable_archive
from iwae_cli.runs.lock import LOCK_NAME, lock_owner
from iwae_cli.runs.processes import pid_alive

STATUS_NAME = "status.json"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"
DAMAGED = "damaged"
# every state a run can be in, as `iwae runs` prints it (and filters by it)
STATES = ("new", "running", "interrupted", "requeued", "failed", "done", DAMAGED)


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
    """A JSON object from disk, or {} if the file is missing or unreadable (see `damage`, which tells)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def damage(run_dir: Path) -> str | None:
    """One line naming the first of run_dir's records that cannot be read (status.json, metrics.json,
    config.yaml, a checkpoint.pt cut short) and what to do, or None. Cheap enough for `iwae runs`, which does
    not read every checkpoint in full: a checkpoint's checksum is verified where it is loaded
    (runs/checkpoint.py load_checkpoint)."""
    run_dir = Path(run_dir)
    for name, parse in ((STATUS_NAME, json.loads), (METRICS_NAME, json.loads), (CONFIG_NAME, _yaml)):
        path = run_dir / name
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:  # ValueError: not UTF-8
            return _damaged(path, str(e))
        try:
            data = parse(text)
        except (ValueError, yaml.YAMLError) as e:
            return _damaged(path, str(e).splitlines()[0])
        if not isinstance(data, dict):
            return _damaged(path, f"not a mapping but {type(data).__name__}")
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.exists() and not readable_archive(checkpoint):
        return f"{checkpoint} is not a readable iwae checkpoint (its archive is cut short or missing); {DAMAGED_FIX}"
    return None


def check_intact(run_dir: Path) -> None:
    """RunError (one line, see `damage`) where one of run_dir's records cannot be read."""
    message = damage(run_dir)
    if message is not None:
        raise RunError(message)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _damaged(path: Path, why: str) -> str:
    fix = (
        "delete it: the run's next `iwae train` writes it again"
        if path.name == STATUS_NAME
        else f"restore it from a copy, or delete the run directory {path.parent} and train the run again"
    )
    return f"{path} is damaged ({why[:120]}); {fix}"


def run_state(run_dir: Path) -> str:
    """done, running, interrupted, requeued, failed, new or damaged (a status.json that cannot be read); a
    'running' run whose process is gone counts as interrupted."""
    path = run_dir / STATUS_NAME
    status = read_json(path)
    if not status and path.exists():
        return DAMAGED
    state = status.get("state", "new")
    if state == "running" and status.get("host") == socket.gethostname() and not pid_alive(status.get("pid")):
        return "interrupted"
    return state


def run_state_with_lock(run_dir: Path) -> str:
    """run_state, corrected by the run directory's lock (iwae_cli.runs.lock), which also sees processes on other
    hosts: 'running' while any live process holds the lock (whatever status.json says, e.g. a 'done' run that
    another process is re-checking), and 'interrupted' for a 'running' status that no process holds (its owner
    died). A directory never locked (trained before locks existed) gets plain run_state. 'damaged' where a
    record cannot be read (`damage`)."""
    if lock_owner(run_dir) is not None:
        return "running"
    if damage(run_dir) is not None:
        return DAMAGED
    state = run_state(run_dir)
    if state == "running" and (Path(run_dir) / LOCK_NAME).exists():
        return "interrupted"
    return state


def find_runs(root: Path) -> list[Path]:
    """Every run directory (one holding config.yaml) below root, sorted by path."""
    if not root.exists():
        return []
    return sorted(p.parent for p in root.rglob(CONFIG_NAME) if ".hydra" not in p.parts)
