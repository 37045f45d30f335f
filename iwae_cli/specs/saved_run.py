"""A trained run read back from its directory: its resolved config, its model and its metrics.

This is the Python entry point for analysing runs (``iwae_cli.load_run``), and what the evaluation commands
start from: `load_named_run` finds the run that a command's `run=` names (or the latest one).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from iwae_cli.core.model import IWAEModel
from iwae_cli.core.provenance import made_from
from iwae_cli.core.runtime import configure_torch, resolve_device
from iwae_cli.errors import ConfigError, RunError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME, load_checkpoint
from iwae_cli.runs.lock import busy_message, lock_owner
from iwae_cli.runs.records import (
    CONFIG_NAME,
    METRICS_NAME,
    check_intact,
    read_json,
    run_state,
    run_state_with_lock,
)
from iwae_cli.runs.run_names import resolve_run_dir
from iwae_cli.specs.checks import flag, whole_number
from iwae_cli.specs.run import architecture


@dataclass
class Run:
    """A loaded run: its directory, resolved configuration, model (eval mode), metrics and the passes over the
    training set its checkpoint had made (None for a checkpoint that does not say)."""

    path: Path
    config: DictConfig
    model: IWAEModel
    metrics: dict[str, Any]
    passes: int | None = None

    @property
    def state(self) -> str:
        return run_state(self.path)

    def made_from(self) -> dict[str, Any]:
        """The provenance of a result computed now from this run's model (core/provenance.py): its checkpoint
        (passes, finished training or not) and this process's environment."""
        return made_from(self.passes, self.state == "done", next(self.model.parameters()).device)


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory for analysis: `run.model.log_weights(x, k)`, `run.model.log_joint(x, hs)`, ...

    >>> run = load_run("outputs/runs/mnist/L1-iwae-k5/quick-text-paper-sum-seed0")
    >>> run.model.log_weights(x_binary, k=50).shape   # [50, batch]
    """
    run_dir = Path(path).expanduser().resolve()
    if not (run_dir / CONFIG_NAME).exists():
        raise RunError(f"{run_dir} has no config.yaml; it is not an iwae run directory (see `iwae runs`)")
    check_intact(run_dir)
    config = OmegaConf.load(run_dir / CONFIG_NAME)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, device)
    model = IWAEModel(architecture(config.arch, config.dataset.name)).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    passes = (state.get("position") or {}).get("passes_done")
    return Run(run_dir, config, model, read_json(run_dir / METRICS_NAME), passes)


def load_named_run(
    cfg: DictConfig, work: Callable[[Run], str] | None = None, check: Callable[[Run], None] | None = None
) -> Run:
    """The run named by the command's `run=`, on the command's device and threads, refused (one line) while
    another process trains it, unless it finished training or `unfinished=true` asks for it anyway (its
    results are then recorded as the unfinished checkpoint's), and where `check(run)` refuses it (IwaeError).

    Without run= it is the most recently trained run, which the user did not choose (and a k=5000 evaluation
    of the wrong run costs minutes): one line on stderr names it, with `work(run)`, what the command is about
    to do with it, before anything starts."""
    unfinished = flag(cfg.get("unfinished", False), "unfinished")
    configure_torch(whole_number(cfg.get("threads"), "threads", allow_null=True))
    path = resolve_run_dir(cfg.get("run"), cfg.output_root)
    check_intact(path)  # a damaged record named before its state is judged
    refuse_unfinished(path, unfinished)
    run = load_run(path, resolve_device(cfg.device))
    if check is not None:
        check(run)
    if cfg.get("run") in (None, ""):
        doing = f": {work(run)}" if work else ""
        print(f"no run= given, so using the most recently trained run, {run.path}{doing}", file=sys.stderr)
    return run


def refuse_unfinished(path: Path, unfinished: bool) -> None:
    """Refuse a run that a live process is training (RunError), and one that has not finished training unless
    `unfinished` (ConfigError, naming the flag)."""
    state = run_state_with_lock(path)
    if state == "running":
        owner = lock_owner(path)
        if owner is not None:
            raise RunError(f"cannot evaluate a run while it trains: {busy_message(path, owner)}")
        raise RunError(f"cannot evaluate {path}: it is being trained (status.json: running); wait for it to finish")
    if state != "done" and not unfinished:
        raise ConfigError(
            f"{path} has not finished training (state: {state}); resume it with `iwae train` (same overrides), "
            "or pass unfinished=true to evaluate its last checkpoint (recorded and shown as unfinished)"
        )
