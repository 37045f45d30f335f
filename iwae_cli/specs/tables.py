"""The table commands' settings (`iwae table1`, `table2`, `table-extra`), checked once, before anything is trained
or written: a bad value is one line naming the setting, what it got and what it accepts (exit 2), so that a typo
never costs a training sweep nor replaces an earlier table with an empty one.

Whether each cell's settings make a run (`iwae train`'s own checks, with the table's train_overrides) is checked
by composing the cell's config (iwae_cli.tasks.tables.settings), on top of these per-value checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from iwae_cli.core.objective_registry import OBJECTIVES
from iwae_cli.core.objectives import check_reduction
from iwae_cli.data.registry import DATASET_NAMES
from iwae_cli.errors import ConfigError, first_line
from iwae_cli.specs.checks import check_setting, seed_list, whole_number
from iwae_cli.specs.profiles import Profile, profile_of

# What a table sets for every cell it trains, and the table's own setting that says it: a train override of one
# of these would train other runs than the table reads.
SET_PER_CELL = {
    "dataset": "datasets=[...]",
    "layers": "depths=[...]",
    "model": "objectives=[...]",
    "k": "ks=[...]",
    "seed": "seeds=[...]",
    "schedule": "profile=...",
    "protocol": "protocol=...",
    "optim": "optim=...",
    "loss_reduction": "loss_reduction=...",
    "group": "group=...",
    "output_root": "output_root=...",
}


@dataclass(frozen=True)
class TableSpec:
    """A table command's checked settings; the grid (datasets ... objectives) is empty for table2, whose cells
    are fixed."""

    datasets: tuple[str, ...]
    depths: tuple[int, ...]
    ks: tuple[int, ...]
    objectives: tuple[str, ...]
    seeds: tuple[int, ...]
    profile: Profile
    loss_reduction: str
    group: str
    n_jobs: int | None
    train_overrides: tuple[str, ...]
    baseline: str | None


def table_spec(cfg: DictConfig) -> TableSpec:
    """The checked settings of a table command's config (ConfigError, one line, for the first bad value)."""
    objectives = tuple(names(cfg, "objectives", OBJECTIVES))
    baseline = cfg.get("baseline")
    if baseline is not None and baseline not in objectives:
        raise ConfigError(
            f"baseline={baseline} is not one of objectives={list(objectives)}; add it to objectives or choose one "
            "of them"
        )
    return TableSpec(
        datasets=tuple(names(cfg, "datasets", DATASET_NAMES)),
        depths=tuple(numbers(cfg, "depths")),
        ks=tuple(numbers(cfg, "ks")),
        objectives=objectives,
        seeds=tuple(seed_list(cfg.seeds)),
        profile=profile_of(cfg.profile),
        loss_reduction=check_reduction(str(cfg.loss_reduction)),
        group=check_setting("group", cfg.get("group", "false")),
        n_jobs=whole_number(cfg.get("n_jobs"), "n_jobs", allow_null=True),
        train_overrides=train_overrides(cfg.get("train_overrides")),
        baseline=None if baseline is None else str(baseline),
    )


def given_list(cfg: DictConfig, key: str) -> list[Any]:
    """`cfg[key]` as a non-empty list without repeats (empty where the command has no such setting)."""
    if key not in cfg:
        return []
    value = cfg[key]
    items = OmegaConf.to_container(value) if OmegaConf.is_list(value) else None
    if not items or len({repr(v) for v in items}) != len(items):
        raise ConfigError(f"{key} must be a list of distinct values, for example {key}=[...], got {key}={value}")
    return items


def names(cfg: DictConfig, key: str, known: Sequence[str]) -> list[str]:
    """`cfg[key]`: a list of names, each one of `known`."""
    items = given_list(cfg, key)
    for item in items:
        if not isinstance(item, str) or item not in known:
            raise ConfigError(f"{key}: unknown {key[:-1]} {item!r} in {key}={items}; choose from {', '.join(known)}")
    return items


def numbers(cfg: DictConfig, key: str) -> list[int]:
    """`cfg[key]`: a list of whole numbers >= 1."""
    items = given_list(cfg, key)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ConfigError(f"{key} must list whole numbers >= 1, for example {key}=[1,2], got {key}={items}")
    return items


def train_overrides(value: Any) -> tuple[str, ...]:
    """`train_overrides`: `iwae train` overrides (key=value, one value each) that leave the cell's own settings
    (SET_PER_CELL) to the table. Whether they make a run is checked with each cell's config."""
    given = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
    if not isinstance(given, list) or not all(isinstance(o, str) for o in given):
        raise ConfigError(
            f"train_overrides must be a list of iwae train overrides, for example "
            f"train_overrides=['checkpoint_minutes=10'], got train_overrides={value}"
        )
    for text in given:
        try:
            override = OverridesParser.create().parse_override(text)
        except HydraException as e:
            raise ConfigError(f"train_overrides: cannot read {text!r} ({first_line(e)})") from None
        key = override.key_or_group.split("@")[0]
        if override.is_sweep_override():
            raise ConfigError(f"train_overrides: {text!r} is a sweep; give one value (each cell is one run)")
        if key in SET_PER_CELL:
            raise ConfigError(
                f"train_overrides: {text!r} sets {key}, which the table sets for each cell; give the table's own "
                f"{SET_PER_CELL[key]} instead"
            )
    return tuple(given)
