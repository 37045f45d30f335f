"""What a training run is made of: plain, frozen settings that the trainer, a lockstep group and the run's
directory read. `iwae_cli.specs.run` builds them once from the composed config (checking every value), so nothing
below the command layer sees the config itself, and several runs in one process each carry their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from iwae_cli.core.model import Architecture
from iwae_cli.core.objectives import build_log_weight_bound, build_objective
from iwae_cli.core.optim import OptimSpec
from iwae_cli.tracking.spec import TrackingSpec
from iwae_cli.training.rates import constant_within_stages, learning_rate


@dataclass(frozen=True)
class Schedule:
    """The staged schedule: passes and learning rate per stage (rates as trained, i.e. already rounded where
    the protocol rounds them), over the first `train_examples` training images (None: all of them)."""

    batch_size: int
    passes: tuple[int, ...]
    learning_rates: tuple[float, ...]
    train_examples: int | None
    anneal: str = "step"  # the rate within a stage: held (step) or along half a cosine (training/rates.py)
    min_learning_rate: float = 0.0  # where a cosine stage ends
    warmup_passes: float = 0.0  # passes of linear warm-up at the start

    def rate(self, stage: int, step_in_stage: int, steps_per_epoch: int) -> float:
        """The learning rate of a step (training/rates.py)."""
        return learning_rate(
            self.learning_rates, self.passes, steps_per_epoch, stage, step_in_stage,
            self.anneal, self.min_learning_rate, self.warmup_passes,
        )

    @property
    def rate_per_stage(self) -> bool:
        """Whether the rate changes only when a stage begins (the paper's schedule)."""
        return constant_within_stages(self.anneal, self.warmup_passes)


@dataclass(frozen=True)
class DataSpec:
    """The registered dataset and where it lies; holdout: the training images held out to validate on (0: the
    whole training split trains, the paper's text)."""

    name: str
    data_dir: str | None
    download: str
    holdout: int


@dataclass(frozen=True)
class ModelSpec:
    """The architecture and its initialisation: seed, and same_seed_init (the authors' quirk, model.initialise)."""

    arch: Architecture
    seed: int
    same_seed_init: bool


@dataclass(frozen=True)
class ObjectiveSpec:
    """The objective `name` with its checked, typed parameters, trained with k samples and `reduction`."""

    name: str
    params: dict[str, Any]
    k: int
    reduction: str

    def build(self) -> Callable:
        """The objective as the training step calls it: (model, x, k, noise) -> Estimate."""
        return build_objective(self.name, self.params, self.k, self.reduction)

    def log_weight_bound(self) -> Callable | None:
        """The bound of the log weights the compiled step needs; None where the objective is not one."""
        return build_log_weight_bound(self.name, self.params, self.k)


@dataclass(frozen=True)
class RunSettings:
    """How the run is carried out: its generator's seed, where and with what it runs, when it checkpoints,
    the seed of the fixed validation draws (eval.seed), and how it is resumed when stopped."""

    seed: int
    device: torch.device
    threads: int | None
    compile: str  # auto, true or false
    checkpoint_minutes: float
    progress: bool | None  # None: progress bars only on a terminal
    snapshot_passes: tuple[int, ...]  # keep the model after these passes (and the last) in snapshots/
    validation_seed: int
    resume_hint: str  # the command line that resumes the run, printed when it is stopped


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs, and what it records about itself: its identity (iwae_cli.specs.identity:
    the typed settings that change the trained model, matched against a checkpoint before resuming), config.yaml's
    text, metrics.json's "run" entry, and the trackers that watch it (never part of the identity: they only read
    the run). parent: the run this one continues (switch-objective), named relative to the output root."""

    data: DataSpec
    schedule: Schedule
    model: ModelSpec
    objective: ObjectiveSpec
    optim: OptimSpec
    settings: RunSettings
    parent: str | None
    fingerprint: dict[str, Any]
    recognise: Callable[[dict[str, Any]], list[str]]  # a checkpoint's fingerprint -> what differs from this run
    config_yaml: str
    summary: dict[str, Any]
    tracking: TrackingSpec
