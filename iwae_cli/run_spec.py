"""A run's parts, built once from its composed config at the command layer.

`RunSpec.from_config(cfg)` checks every setting (one line per problem, before any data is read) and returns
plain objects: the trainer and the modules below it never see the DictConfig, so several runs in one process
(each from its own spec) need no second path through the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import FINGERPRINT_KEYS
from .checks import number, whole_number
from .data_registry import get_dataset
from .errors import ConfigError
from .model import Architecture
from .objectives import (
    LOG_WEIGHT_BOUNDS,
    build_log_weight_bound,
    build_objective,
    check_reduction,
    node_parameters,
)
from .optim import OptimSpec
from .registry import bind
from .runs import run_summary
from .runtime import resolve_device
from .task_inputs import progress_setting

COMPILE_CHOICES = ("auto", "true", "false")


@dataclass(frozen=True)
class Schedule:
    """The staged schedule: passes and learning rate per stage (rates as trained, i.e. already rounded where
    the protocol rounds them), over the first `train_examples` training images (None: all of them)."""

    batch_size: int
    passes: tuple[int, ...]
    learning_rates: tuple[float, ...]
    train_examples: int | None


@dataclass(frozen=True)
class DataSpec:
    """The registered dataset and where it lies; holdout: validate on held-out training images (the code)."""

    name: str
    data_dir: str | None
    download: str
    holdout: bool


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
    and the seed of the fixed validation draws (eval.seed)."""

    seed: int
    device: torch.device
    threads: int | None
    compile: str  # auto, true or false
    checkpoint_minutes: float
    progress: bool | None  # None: progress bars only on a terminal
    validation_seed: int


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs, and what it records about itself: the fingerprint (FINGERPRINT_KEYS'
    resolved values, matched against a checkpoint before resuming), config.yaml's text and metrics.json's
    "run" entry."""

    data: DataSpec
    schedule: Schedule
    model: ModelSpec
    objective: ObjectiveSpec
    optim: OptimSpec
    settings: RunSettings
    fingerprint: dict[str, Any]
    config_yaml: str
    summary: dict[str, Any]

    @classmethod
    def from_config(cls, cfg: DictConfig) -> RunSpec:
        """Check `cfg` (ConfigError, one line, for the first unusable value) and build the run's parts."""
        k = whole_number(cfg.k, "k")
        reduction = check_reduction(str(cfg.get("loss_reduction", "sum")))
        seed = whole_number(cfg.seed, "seed", minimum=0)
        return cls(  # (keyword arguments are evaluated in order: the checks run in this order)
            settings=run_settings(cfg, seed),
            data=data_spec(cfg),
            schedule=schedule(cfg),
            model=ModelSpec(architecture(cfg), seed, bool(cfg.arch.get("same_seed_init", False))),
            objective=objective_spec(cfg.model, k, reduction),
            optim=OptimSpec.from_config(cfg.optim),
            fingerprint=fingerprint(cfg),
            config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
            summary=run_summary(cfg),
        )


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """FINGERPRINT_KEYS' resolved values, as plain Python: what a checkpoint must match to be resumed."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return {key: container.get(key) for key in FINGERPRINT_KEYS}


def protocol(cfg: DictConfig) -> Any:
    """The `protocol` node ({} where a config has none: the defaults below apply)."""
    return cfg.get("protocol") or {}


def run_settings(cfg: DictConfig, seed: int) -> RunSettings:
    """The settings that may change on resume, checked; compile=true only for a bound of the log weights."""
    checkpoint_minutes = number(cfg.checkpoint_minutes, "checkpoint_minutes")
    # Hydra parses compile=true as a bool, hence the text
    compile_choice = str(cfg.get("compile", "auto")).lower()
    if compile_choice not in COMPILE_CHOICES:
        raise ConfigError(f"compile must be auto, true or false, got {cfg.compile}")
    if compile_choice == "true" and cfg.model.name not in LOG_WEIGHT_BOUNDS:
        raise ConfigError(
            f"compile=true needs an objective that is a bound of the log weights ({', '.join(LOG_WEIGHT_BOUNDS)}); "
            f"model={cfg.model.name} trains with compile=false"
        )
    return RunSettings(
        seed=seed,
        device=resolve_device(cfg.device),
        threads=whole_number(cfg.get("threads"), "threads", allow_null=True),
        compile=compile_choice,
        checkpoint_minutes=checkpoint_minutes,
        progress=progress_setting(cfg),
        validation_seed=whole_number(cfg.eval.seed, "eval.seed", minimum=0),
    )


def schedule(cfg: DictConfig) -> Schedule:
    """The `schedule` node, checked, with its rates as the protocol trains them."""
    node = cfg.schedule
    batch = whole_number(node.batch_size, "schedule.batch_size")
    passes, rates = list(node.passes), list(node.learning_rates)
    if not passes or len(passes) != len(rates):
        raise ConfigError(
            f"schedule.passes ({len(passes)} stages) and schedule.learning_rates ({len(rates)}) must be "
            "non-empty lists of the same length"
        )
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in passes):
        raise ConfigError(f"schedule.passes must be whole numbers >= 0, got {passes}")
    if any(not isinstance(r, int | float) or isinstance(r, bool) or not r > 0 for r in rates):
        raise ConfigError(f"schedule.learning_rates must be positive numbers, got {rates}")
    n = node.get("train_examples")
    if n is not None and (not isinstance(n, int) or n < batch):
        raise ConfigError(f"schedule.train_examples must be null or >= batch_size ({batch}), got {n}")
    rounded = learning_rates(rates, bool(protocol(cfg).get("round_learning_rates", False)))
    return Schedule(batch, tuple(passes), tuple(rounded), n)


def learning_rates(rates: list[float], round_as_code: bool) -> list[float]:
    """The rates per stage; with round_as_code rounded as the authors' code does (experiments.py:
    1e-4 * round(10^(1 - i/7), 1), i.e. to 0.1 in units of 1e-4: 7.2e-4, 5.2e-4...)."""
    rates = [float(r) for r in rates]
    if round_as_code:
        rates = [float(f"{round(r * 1e4, 1)}e-4") for r in rates]  # 7.2e-4 as written, not 7.2/1e4
        if min(rates) <= 0:
            raise ConfigError(
                "protocol.round_learning_rates rounds rates below 5e-6 to zero; use protocol=text for such a schedule"
            )
    return rates


def data_spec(cfg: DictConfig) -> DataSpec:
    """The dataset to train on; holdout defaults to the authors' code's (a validation set held out)."""
    holdout = bool(protocol(cfg).get("holdout", True))
    return DataSpec(str(cfg.dataset.name), cfg.get("data_dir"), str(cfg.get("download", "auto")), holdout)


def architecture(cfg: DictConfig) -> Architecture:
    """The `arch` node's sizes, with the input size of the dataset's images."""
    return Architecture.from_config(cfg.arch, x_dim=get_dataset(cfg.dataset.name).n_pixels)


def objective_spec(model_config: Any, k: int, reduction: str) -> ObjectiveSpec:
    """The `model` node's objective, its parameters typed and checked against k."""
    name, given = node_parameters(model_config)
    _, params = bind(name, given, k)
    return ObjectiveSpec(name, params, k, reduction)
