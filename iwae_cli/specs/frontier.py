"""`iwae frontier`'s settings, checked once: the cells, the recipes (each the `iwae train` overrides that make it),
the pass marks, the held-out images and how marks are scored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import ConfigError
from iwae_cli.specs.checks import whole_number


@dataclass(frozen=True)
class Cell:
    """One model of a table: stochastic layers, objective and k."""

    layers: int
    model: str
    k: int

    @property
    def name(self) -> str:
        return f"L{self.layers}-{self.model}-k{self.k}"


@dataclass(frozen=True)
class FrontierSpec:
    name: str
    dataset: str
    cells: tuple[Cell, ...]
    recipes: dict[str, tuple[str, ...]]
    marks: tuple[int, ...]
    holdout: int
    valid_k: int
    valid_examples: int
    final_k: int
    final_examples: int
    seed: int
    protocol: str
    n_jobs: int | None


def frontier_spec(cfg: DictConfig) -> FrontierSpec:
    """The checked settings (ConfigError, one line, for the first unusable one)."""
    if not re.fullmatch(r"[\w.-]+", str(cfg.name)):
        raise ConfigError(f"name names a folder under <output_root>/frontier: letters, digits, . _ -, got {cfg.name}")
    dataset = get_dataset(str(cfg.dataset.name))
    holdout = whole_number(cfg.holdout, "holdout")
    if "valid" in dataset.split_files or holdout >= dataset.train_size:
        raise ConfigError(
            f"holdout={holdout} cannot be held out of {dataset.name}'s training images ({dataset.train_size}); "
            "give fewer, on a dataset without a validation file of its own"
        )
    cells = tuple(cell(c) for c in cfg.cells)
    recipes = OmegaConf.to_container(cfg.recipes)
    if not cells or not isinstance(recipes, dict) or not recipes:
        raise ConfigError("frontier needs cells=[...] and recipes={name: [overrides]}: see `iwae frontier --help`")
    marks = sorted({whole_number(m, "marks") for m in cfg.marks})
    if not marks:
        raise ConfigError("marks must list the passes at which each run is scored, e.g. marks=[1,3,10]")
    examples = whole_number(cfg.valid_examples, "valid_examples")
    if examples > holdout:
        raise ConfigError(f"valid_examples={examples} is more than the {holdout} held-out images")
    final_examples = whole_number(cfg.get("final_examples"), "final_examples", allow_null=True) or holdout
    if final_examples > holdout:
        raise ConfigError(f"final_examples={final_examples} is more than the {holdout} held-out images")
    return FrontierSpec(
        name=str(cfg.name),
        dataset=dataset.name,
        cells=cells,
        recipes={str(name): recipe_overrides(name, given) for name, given in recipes.items()},
        marks=tuple(marks),
        holdout=holdout,
        valid_k=whole_number(cfg.valid_k, "valid_k"),
        valid_examples=examples,
        final_k=whole_number(cfg.final_k, "final_k"),
        final_examples=final_examples,
        seed=whole_number(cfg.seed, "seed", minimum=0),
        protocol=str(cfg.protocol.name),
        n_jobs=whole_number(cfg.get("n_jobs"), "n_jobs", allow_null=True),
    )


def cell(node: Any) -> Cell:
    """A `cells` entry: {layers, model, k}."""
    try:
        return Cell(int(node.layers), str(node.model), int(node.k))
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(f"each of cells must be {{layers: 1, model: iwae, k: 50}}, got {node}") from None


def recipe_overrides(name: str, given: Any) -> tuple[str, ...]:
    """A recipe: the `iwae train` overrides that make it (schedule=..., optim=..., optim.beta1=...)."""
    if not isinstance(given, list) or not all(isinstance(o, str) and "=" in o for o in given):
        raise ConfigError(f"recipes.{name} must be a list of key=value overrides for iwae train, got {given}")
    return tuple(given)
