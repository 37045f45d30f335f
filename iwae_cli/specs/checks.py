"""Checks of single config values, each failing with one line that names the setting and what it accepts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from iwae_cli.core.setting_names import ANNEALS, DOWNLOAD_MODES, LOSS_REDUCTIONS, SPLITS, SWEEP_METRICS
from iwae_cli.errors import ConfigError


def whole_number(value: Any, name: str, minimum: int = 1, allow_null: bool = False) -> int | None:
    """`value` as an int >= minimum (or None where null is allowed), else ConfigError."""
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        null = " (or null)" if allow_null else ""
        raise ConfigError(f"{name} must be a whole number >= {minimum}{null}, got {name}={value}")
    return value


def seed_list(value: Any, name: str = "seeds") -> list[int]:
    """`value` as a sorted list of distinct whole numbers >= 0 (a table's seeds, in the order its per-seed
    columns list them), else ConfigError."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    whole = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in items)
    if not items or not whole or len(set(items)) != len(items):
        raise ConfigError(
            f"{name} must be a list of distinct whole numbers >= 0, for example {name}=[0,1,2], got {name}={value}"
        )
    return sorted(items)


def number(value: Any, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """`value` as a float >= minimum (> minimum when strict), else ConfigError."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{name} must be a number {bound}, got {name}={value}")
    return float(value)


def flag(value: Any, name: str) -> bool:
    """A true/false setting: a bool, or the text true or false in any case (a quoted or YAML string), else
    ConfigError; yes, no, 1, 0 and the like are refused, not read as truthy."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{name} must be true or false, got {name}={value}")


def choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """`value` as one of `choices`, else ConfigError naming them. Hydra reads a bare true/false (any case) as a
    bool, so true and false are taken in any case, as flag takes them; other names as written."""
    text = str(value).lower() if isinstance(value, bool) else value
    if isinstance(text, str) and text.lower() in ("true", "false"):
        text = text.lower()
    if isinstance(text, str) and text in choices:
        return text
    raise ConfigError(f"{name} must be {' or '.join([', '.join(choices[:-1]), choices[-1]])}, got {name}={value}")


def device_name(value: Any, name: str = "device") -> str:
    """A device setting: auto, cpu, cuda, cuda:<index> or mps (whether it is present here is checked when the run
    starts: core/runtime.py, resolve_device), else ConfigError."""
    text = str(value)
    index = text.partition(":")[2]
    if text in DEVICES or (text.startswith("cuda:") and index.isdigit()):
        return text
    raise ConfigError(f"{name} must be auto, cpu, cuda, cuda:<index> or mps, got {name}={value}")


DEVICES = ("auto", "cpu", "cuda", "mps")
AUTO_TRUE_FALSE = ("auto", "true", "false")
GROUP_CHOICES = ("true", "false", "auto")  # specs/group.py: whether a sweep trains in lockstep groups


def _choice_of(*choices: str) -> Callable[[Any, str], str]:
    return lambda value, name: choice(value, name, choices)


# The settings with a fixed set of values, by their key in a command's config: each is read through
# check_setting (here and where the specs read it), and the command line checks them before Hydra runs a job
# (iwae_cli/cli/overrides.py), so a mistake is one line before anything is written.
SETTINGS: dict[str, Callable[[Any, str], Any]] = {
    "evaluate": flag,
    "progress": _choice_of(*AUTO_TRUE_FALSE),
    "compile": _choice_of(*AUTO_TRUE_FALSE),
    "group": _choice_of(*GROUP_CHOICES),
    "device": device_name,
    "download": _choice_of(*DOWNLOAD_MODES),
    "sweep_metric": _choice_of(*SWEEP_METRICS),
    "loss_reduction": _choice_of(*LOSS_REDUCTIONS),
    "schedule.anneal": _choice_of(*ANNEALS),
    "split": _choice_of(*SPLITS),
    "eval.split": _choice_of(*SPLITS),
    "prune_inactive": flag,
    "inclusive": flag,
    "eval.prune_inactive": flag,
    "active_units.inclusive": flag,
    "profile.prune_inactive": flag,
    "arch.same_seed_init": flag,
    "protocol.round_learning_rates": flag,
}


def check_setting(key: str, value: Any) -> Any:
    """`value` of the setting `key` (one of SETTINGS), checked and typed."""
    return SETTINGS[key](value, key)


def setting(cfg: Any, key: str, default: Any) -> Any:
    """The setting `key` (dotted, one of SETTINGS) of a config node, checked and typed; `default` where the
    config has none."""
    node = cfg
    for part in key.split("."):
        node = node.get(part) if hasattr(node, "get") else None
        if node is None:
            return check_setting(key, default)
    return check_setting(key, node)


def progress_setting(cfg: Any) -> bool | None:
    """The config's `progress`: true/false force progress bars on or off, auto (None) shows them on a terminal."""
    value = setting(cfg, "progress", "auto")
    return None if value == "auto" else value == "true"
