"""Run directories: their status and metrics files, finding them, and loading one from Python.

A run directory holds `config.yaml` (the resolved configuration), `checkpoint.pt`, `train_log.csv`,
`status.json` (running / interrupted / failed / done) and `metrics.json` (everything a table row needs).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write_json, update_json
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .data_registry import get_dataset
from .errors import RunError
from .lock import LOCK_NAME, lock_owner
from .model import Architecture, IWAEModel

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
    """done, running, interrupted, failed or new; a 'running' run whose process is gone counts as interrupted."""
    status = read_json(run_dir / STATUS_NAME)
    state = status.get("state", "new")
    if state == "running" and status.get("host") == socket.gethostname() and not _alive(status.get("pid")):
        return "interrupted"
    return state


def run_state_with_lock(run_dir: Path) -> str:
    """run_state, corrected by the run directory's lock (iwae_cli.lock), which also sees processes on other
    hosts: 'running' while any live process holds the lock (whatever status.json says, e.g. a 'done' run that
    another process is re-checking), and 'interrupted' for a 'running' status that no process holds (its owner
    died). A directory never locked (trained before locks existed) gets plain run_state."""
    if lock_owner(run_dir) is not None:
        return "running"
    state = run_state(run_dir)
    if state == "running" and (Path(run_dir) / LOCK_NAME).exists():
        return "interrupted"
    return state


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_summary(cfg: DictConfig) -> dict[str, Any]:
    """The configuration fields a table row is keyed by."""
    return {
        "dataset": cfg.dataset.name,
        "layers": len(cfg.arch.latent_units),
        "latent_units": list(cfg.arch.latent_units),
        "objective": cfg.model.name,
        "k": int(cfg.k),
        "seed": int(cfg.seed),
        "schedule": cfg.schedule.name,
        "optim": cfg.optim.name,
        "protocol": (cfg.get("protocol") or {}).get("name", "text"),
        "loss_reduction": cfg.get("loss_reduction", "sum"),
        "parent": cfg.get("parent"),
    }


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


@dataclass
class Run:
    """A loaded run: its directory, resolved configuration, model (eval mode) and metrics."""

    path: Path
    config: DictConfig
    model: IWAEModel
    metrics: dict[str, Any]

    @property
    def state(self) -> str:
        return run_state(self.path)


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory for analysis: `run.model.log_weights(x, k)`, `run.model.log_joint(x, hs)`, ...

    >>> run = load_run("outputs/runs/mnist/L1-iwae-k5/quick-text-paper-sum-seed0")
    >>> run.model.log_weights(x_binary, k=50).shape   # [50, batch]
    """
    run_dir = Path(path).expanduser().resolve()
    if not (run_dir / CONFIG_NAME).exists():
        raise RunError(f"{run_dir} has no config.yaml; it is not an iwae run directory (see `iwae runs`)")
    config = OmegaConf.load(run_dir / CONFIG_NAME)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, device)
    x_dim = get_dataset(config.dataset.name).n_pixels  # the model reads the dataset's images
    model = IWAEModel(Architecture.from_config(config.arch, x_dim=x_dim)).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return Run(run_dir, config, model, read_json(run_dir / METRICS_NAME))


def describe_runs(output_root: Path) -> str:
    """A table of every run under output_root/runs: configuration, state, progress and results."""
    import pandas as pd

    root = Path(output_root) / "runs"
    rows = []
    for path in find_runs(root):
        metrics = read_json(path / METRICS_NAME)
        run = metrics.get("run", {})
        nll = metrics.get("test_nll", {})
        rows.append(
            {
                "run": str(path.relative_to(root)),
                "state": run_state_with_lock(path),  # the lock also sees owners on other hosts
                "dataset": run.get("dataset"),
                "layers": run.get("layers"),
                "objective": run.get("objective"),
                "k": run.get("k"),
                "passes": metrics.get("train", {}).get("passes_done", _passes_from_log(path)),
                "test_nll": f"{nll['nll']:.2f}±{nll['standard_error']:.2f}" if nll else "",
                "units": metrics.get("active_units", {}).get("label", ""),
            }
        )
    if not rows:
        return f"no runs under {root}"
    return pd.DataFrame(rows, dtype=object).fillna("").to_string(index=False)


def _passes_from_log(run_dir: Path) -> int:
    """Passes completed so far, from the per-epoch log (for runs still in progress)."""
    log = run_dir / "train_log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.exists() else 0
