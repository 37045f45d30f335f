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
from iwae_cli.core.runtime import configure_torch, resolve_device
from iwae_cli.errors import RunError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME, load_checkpoint
from iwae_cli.runs.records import CONFIG_NAME, METRICS_NAME, read_json, resolve_run_dir, run_state
from iwae_cli.specs.checks import whole_number
from iwae_cli.specs.run import architecture


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
    model = IWAEModel(architecture(config.arch, config.dataset.name)).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return Run(run_dir, config, model, read_json(run_dir / METRICS_NAME))


def load_named_run(cfg: DictConfig, work: Callable[[Run], str] | None = None) -> Run:
    """The run named by the command's `run=`, on the command's device and threads.

    Without run= it is the most recently trained run, which the user did not choose (and a k=5000 evaluation
    of the wrong run costs minutes): one line on stderr names it, with `work(run)`, what the command is about
    to do with it, before anything starts."""
    configure_torch(whole_number(cfg.get("threads"), "threads", allow_null=True))
    run = load_run(resolve_run_dir(cfg.get("run"), cfg.output_root), resolve_device(cfg.device))
    if cfg.get("run") in (None, ""):
        doing = f": {work(run)}" if work else ""
        print(f"no run= given, so using the most recently trained run, {run.path}{doing}", file=sys.stderr)
    return run
