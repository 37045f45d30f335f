"""A training run's spec (iwae_cli.training.spec), built once from its composed config.

`run_spec(cfg, resume_hint)` checks every setting (one line per problem, before any data is read) and returns
plain objects: the trainer and the modules below it never see the DictConfig, so several runs in one process
(each from its own spec) need no second path through the config.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from iwae_cli.core.model import Architecture
from iwae_cli.core.objective_registry import bind
from iwae_cli.core.objectives import LOG_WEIGHT_BOUNDS, check_reduction, node_parameters
from iwae_cli.core.optim import OptimSpec
from iwae_cli.core.runtime import resolve_device
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import ConfigError
from iwae_cli.runs.checkpoint import FINGERPRINT_KEYS
from iwae_cli.specs.checks import number, progress_setting, whole_number
from iwae_cli.specs.schedule_label import schedule_label
from iwae_cli.specs.tracking import tracking_spec
from iwae_cli.training.spec import DataSpec, ModelSpec, ObjectiveSpec, RunSettings, RunSpec, Schedule

COMPILE_CHOICES = ("auto", "true", "false")


def run_spec(cfg: DictConfig, resume_hint: str) -> RunSpec:
    """Check `cfg` (ConfigError, one line, for the first unusable value) and build the run's parts;
    resume_hint: the command line that resumes the run."""
    k = whole_number(cfg.k, "k")
    reduction = check_reduction(str(cfg.get("loss_reduction", "sum")))
    seed = whole_number(cfg.seed, "seed", minimum=0)
    return RunSpec(  # (keyword arguments are evaluated in order: the checks run in this order)
        settings=run_settings(cfg, seed, resume_hint),
        data=data_spec(cfg),
        schedule=schedule(cfg),
        model=ModelSpec(architecture(cfg), seed, bool(cfg.arch.get("same_seed_init", False))),
        objective=objective_spec(cfg.model, k, reduction),
        optim=OptimSpec.from_config(cfg.optim),
        fingerprint=fingerprint(cfg),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        summary=run_summary(cfg),
        tracking=tracking_spec(cfg),
    )


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """FINGERPRINT_KEYS' resolved values, as plain Python: what a checkpoint must match to be resumed."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return {key: container.get(key) for key in FINGERPRINT_KEYS}


def protocol(cfg: DictConfig) -> Any:
    """The `protocol` node ({} where a config has none: the defaults below apply)."""
    return cfg.get("protocol") or {}


def run_settings(cfg: DictConfig, seed: int, resume_hint: str) -> RunSettings:
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
        resume_hint=resume_hint,
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


def run_summary(cfg: DictConfig) -> dict[str, Any]:
    """The configuration fields a table row is keyed by (metrics.json's "run" entry)."""
    return {
        "dataset": cfg.dataset.name,
        "layers": len(cfg.arch.latent_units),
        "latent_units": list(cfg.arch.latent_units),
        "objective": cfg.model.name,
        "k": int(cfg.k),
        "seed": int(cfg.seed),
        "schedule": schedule_label(cfg.schedule),  # the name its run directory has
        "optim": cfg.optim.name,
        "protocol": (cfg.get("protocol") or {}).get("name", "text"),
        "loss_reduction": cfg.get("loss_reduction", "sum"),
        "parent": cfg.get("parent"),
    }
