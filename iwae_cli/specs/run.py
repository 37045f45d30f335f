"""A training run's spec (iwae_cli.training.spec), built once from its composed config.

`run_spec(cfg, resume_hint)` checks every setting (one line per problem, before any data is read) and returns
plain objects: the trainer and the modules below it never see the DictConfig, so several runs in one process
(each from its own spec) need no second path through the config.
"""

from __future__ import annotations

import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iwae_cli.core.model import Architecture
from iwae_cli.core.objective_registry import bind
from iwae_cli.core.objectives import LOG_WEIGHT_BOUNDS, check_reduction
from iwae_cli.core.optim import OptimSpec
from iwae_cli.core.runtime import resolve_device
from iwae_cli.data.loading import held_out_count
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import ConfigError
from iwae_cli.specs.checks import number, progress_setting, setting, whole_number
from iwae_cli.specs.identity import (
    VERSION,
    TrainedParts,
    differences,
    identity,
    optim_label,
    protocol_label,
    schedule_label,
)
from iwae_cli.specs.tracking import tracking_spec
from iwae_cli.training.spec import DataSpec, ModelSpec, ObjectiveSpec, RunSettings, RunSpec, Schedule


def run_spec(cfg: DictConfig, resume_hint: str) -> RunSpec:
    """Check `cfg` (ConfigError, one line, for the first unusable value) and build the run's parts;
    resume_hint: the command line that resumes the run."""
    settings = run_settings(cfg, resume_hint)
    parts = typed_parts(cfg)
    return RunSpec(
        settings=settings,
        data=parts.data,
        schedule=parts.schedule,
        model=parts.model,
        objective=parts.objective,
        optim=parts.optim,
        parent=parts.parent,
        fingerprint=(fingerprint := identity(parts)),
        recognise=functools.partial(stored_differences, fingerprint),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        summary=run_summary(cfg),
        tracking=tracking_spec(cfg),
    )


def typed_parts(cfg: Any) -> TrainedParts:
    """The settings that change the trained model, from the config nodes identity.IDENTITY_SOURCES, checked in
    this order (the first unusable value is the one reported)."""
    k = whole_number(cfg.k, "k")
    reduction = check_reduction(setting(cfg, "loss_reduction", "sum"))
    seed = whole_number(cfg.seed, "seed", minimum=0)
    data = data_spec(cfg)
    plan = schedule(cfg)
    model = ModelSpec(architecture(cfg.arch, data.name), seed, setting(cfg, "arch.same_seed_init", False))
    parent = cfg.get("parent")
    return TrainedParts(
        data, model, objective_spec(cfg.model, k, reduction), plan, optim_spec(cfg.optim),
        None if parent is None else str(parent),
    )


def typed_v1(stored: dict[str, Any]) -> dict[str, Any]:
    """A version-1 fingerprint (identity.IDENTITY_SOURCES' raw values) typed as version 2's, so that the same
    settings compare equal however the YAML of the day spelled them; ConfigError where they make no valid run."""
    try:
        return identity(typed_parts(OmegaConf.create(stored)))
    except (ConfigError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"its settings no longer make a valid run ({e})") from None


def stored_differences(expected: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's fingerprint (version 2, or version 1 typed) and `expected`."""
    if stored.get("version") != VERSION:
        try:
            stored = typed_v1(stored)
        except ConfigError as e:
            return [str(e)]
    return differences(stored, expected)


def protocol(cfg: DictConfig) -> Any:
    """The `protocol` node ({} where a config has none: the defaults below apply)."""
    return cfg.get("protocol") or {}


def run_settings(cfg: DictConfig, resume_hint: str) -> RunSettings:
    """The settings that may change on resume, checked; compile=true only for a bound of the log weights."""
    checkpoint_minutes = number(cfg.checkpoint_minutes, "checkpoint_minutes")
    compile_choice = setting(cfg, "compile", "auto")
    if compile_choice == "true" and cfg.model.name not in LOG_WEIGHT_BOUNDS:
        raise ConfigError(
            f"compile=true needs an objective that is a bound of the log weights ({', '.join(LOG_WEIGHT_BOUNDS)}); "
            f"model={cfg.model.name} trains with compile=false"
        )
    return RunSettings(
        seed=whole_number(cfg.seed, "seed", minimum=0),
        device=resolve_device(setting(cfg, "device", "auto")),
        threads=whole_number(cfg.get("threads"), "threads", allow_null=True),
        compile=compile_choice,
        checkpoint_minutes=checkpoint_minutes,
        progress=progress_setting(cfg),
        snapshot_passes=tuple(sorted({whole_number(p, "snapshot_passes") for p in cfg.get("snapshot_passes") or []})),
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
    rounded = learning_rates(rates, setting(cfg, "protocol.round_learning_rates", False))
    anneal = setting(cfg, "schedule.anneal", "step")
    floor = number(node.get("min_learning_rate", 0.0), "schedule.min_learning_rate")
    warmup = number(node.get("warmup_passes", 0), "schedule.warmup_passes")
    return Schedule(batch, tuple(passes), tuple(rounded), n, anneal, floor, warmup)


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
    """The dataset to train on, and the training images held out to validate on: protocol.holdout true (the
    dataset's own: the authors' code), false (none: the paper's text) or a number N (the last N)."""
    name = str(cfg.dataset.name)
    holdout = protocol(cfg).get("holdout", True)
    if isinstance(holdout, bool) or (isinstance(holdout, int) and holdout >= 0):
        count = held_out_count(get_dataset(name), holdout)
    else:
        raise ConfigError(f"protocol.holdout must be true, false or a number of images, got {holdout}")
    return DataSpec(name, cfg.get("data_dir"), setting(cfg, "download", "auto"), count)


def architecture(arch: Any, dataset: str) -> Architecture:
    """The `arch` node's sizes, with the input size of the dataset's images; one clear error for inconsistent
    sizes."""
    latent = tuple(int(u) for u in arch.latent_units)
    enc = tuple(tuple(int(u) for u in layer) for layer in arch.encoder_hidden)
    dec = tuple(tuple(int(u) for u in layer) for layer in arch.decoder_hidden)
    if not latent or any(u < 1 for u in latent) or any(u < 1 for layer in enc + dec for u in layer):
        raise ConfigError(f"arch sizes must be positive integers, got latent_units={list(latent)}")
    if not (len(enc) == len(dec) == len(latent)):
        raise ConfigError(
            f"arch.latent_units has {len(latent)} layers but encoder_hidden has {len(enc)} and "
            f"decoder_hidden {len(dec)}: give one hidden-size list per stochastic layer"
        )
    return Architecture(latent, enc, dec, get_dataset(dataset).n_pixels)


def optim_spec(node: Any) -> OptimSpec:
    """The `optim` node (variant, beta1, beta2, eps) as a checked OptimSpec."""
    return OptimSpec(str(node.variant), (float(node.beta1), float(node.beta2)), float(node.eps))


def objective_spec(model_config: Any, k: int, reduction: str) -> ObjectiveSpec:
    """The `model` node's objective, its parameters typed and checked against k."""
    name = str(model_config.name)
    given = {key: value for key, value in model_config.items() if key != "name"}
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
        "schedule": schedule_label(cfg.schedule),  # as its run directory's name shows them
        "optim": optim_label(cfg.optim),
        "protocol": protocol_label(cfg),
        "loss_reduction": cfg.get("loss_reduction", "sum"),
        "parent": cfg.get("parent"),
        "identity": VERSION,
    }
