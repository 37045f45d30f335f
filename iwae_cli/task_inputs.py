"""What the commands read from their config: the run named by `run=`, a split of its dataset, the progress setting."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from .checks import whole_number
from .datasets import load_dataset
from .errors import ConfigError
from .runs import Run, load_run, resolve_run_dir
from .runtime import configure_torch, resolve_device


def load_named_run(cfg: DictConfig) -> Run:
    """The run named by the command's `run=` (or the latest), on the command's device."""
    configure_torch(cfg.get("threads"))
    return load_run(resolve_run_dir(cfg.get("run"), cfg.output_root), resolve_device(cfg.device))


def split_tensor(dataset: str, split: str, cfg: DictConfig, examples: int | None) -> torch.Tensor:
    """Intensities of one split (optionally its first N examples)."""
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"split={split} does not exist; use split=test, split=valid or split=train")
    examples = whole_number(examples, "examples", allow_null=True)
    data = getattr(load_dataset(dataset, cfg.get("data_dir"), cfg.get("download", "auto")), split)
    return data if examples is None else data[:examples]


def progress_setting(cfg: DictConfig) -> bool | None:
    """The config's `progress`: true/false force progress bars on or off, auto (None) shows them on a terminal."""
    value = cfg.get("progress", "auto")
    return None if value == "auto" else bool(value)
