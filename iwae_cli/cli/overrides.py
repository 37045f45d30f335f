"""An experiment command's overrides checked before Hydra runs it: a mistake on the command line is one line
(ConfigError, exit 2) naming the key, the bad value and what it accepts, and nothing is written.

Hydra itself reports an unknown config-group option or key in a block of 5 to 18 lines, takes `+key=...` for any
new key (which no command reads, so a typo is silently ignored), and leaves the values to each task. Here the
command's config is composed with Hydra's own compose API, once with the group choices alone (to know the
command's settings) and once with every override (a sweep's first value), and every setting that has a fixed set
of values (specs/checks.py, SETTINGS) is checked, each value of a sweep included. Keys that are free by design
may be added with `+`: `tags.*` and `hydra.*` everywhere, a recipe (`+recipes.<name>=[...]`) in `iwae frontier`,
and the first run's training settings in `iwae switch-objective` (`+schedule.switch_passes=[5]`, `+seed=1`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    OverrideType,
    QuotedString,
)
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from iwae_cli.core.setting_names import IDENTITY_SOURCES
from iwae_cli.errors import ConfigError, first_line
from iwae_cli.specs.checks import SETTINGS, check_setting

FREE_EVERYWHERE = ("tags", "hydra")
# switch-objective: the first run's settings that make its model, which tasks/switch.py merges into the second
# stage (a `+` of a key the first run has is no new key there)
FREE_IN = {"frontier": ("recipes",), "switch-objective": IDENTITY_SOURCES}
# The config groups that take a list of options (logger=[tensorboard,mlflow]: every tracker named); the others
# take one, and a list would merge several options into one config
LIST_GROUPS = ("logger",)
# Hydra's flags that print help or read another config: these commands are not checked here
UNCHECKED_FLAGS = ("help", "hydra_help", "shell_completion", "config_path", "config_name", "config_dir",
                   "experimental_rerun")


def check_overrides(command: str, config_name: str, args: list[str]) -> None:
    """ConfigError (one line) for the first mistake among `args`, the command line `iwae <command>` hands to
    Hydra (flags and overrides); nothing when the config composes and its settings are valid."""
    flags = hydra_arguments(command, args)
    if any(getattr(flags, name) for name in UNCHECKED_FLAGS):
        return
    overrides = [parsed(arg) for arg in flags.overrides]
    sweeps = [o.input_line for o in overrides if o.is_sweep_override() and not is_free(command, o)]
    if sweeps and not flags.multirun:
        raise ConfigError(f"{sweeps[0]} is a sweep (a job per value): add -m to run it, or give one value")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("iwae_cli.conf", version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            chosen, base = group_choices(command, config_name, overrides, loader)
            for override in overrides:
                if override not in chosen:
                    check_key(command, override, base)
            everything = [first_value(o, loader) for o in overrides]
            cfg = base if len(chosen) == len(overrides) else composed(command, config_name, everything)
    finally:
        GlobalHydra.instance().clear()
    for override in overrides:
        if override.key_or_group in SETTINGS:
            for value in sweep_values(override):
                check_setting(override.key_or_group, value)
    for key in SETTINGS:
        value = resolved(cfg, key)
        if value is not None:
            check_setting(key, value)


def group_choices(
    command: str, config_name: str, overrides: list[Override], loader: Any
) -> tuple[list[Override], DictConfig]:
    """The overrides that choose an option of a config group, each value checked against the group's options,
    and the command's config composed with them alone. Should one name a group the command lacks, only the
    command's own groups are kept (the others are then checked as its keys)."""
    chosen = [o for o in overrides if o.type == OverrideType.CHANGE and loader.get_group_options(o.key_or_group)]
    for override in chosen:  # each value of a sweep, not only the first composed
        check_options(override, loader.get_group_options(override.key_or_group))
    try:
        base = compose(config_name, [first_value(o, loader) for o in chosen], return_hydra_config=True)
    except HydraException:  # ask which groups the command has only when one may not be its
        groups = loader.compute_defaults_list(config_name, [], RunMode.RUN).overrides.known_choices
        chosen = [o for o in chosen if o.key_or_group in groups]
        base = composed(command, config_name, [first_value(o, loader) for o in chosen])
    return chosen, base


def hydra_arguments(command: str, args: list[str]) -> argparse.Namespace:
    """`args` read as Hydra reads them (its own argument parser); a misplaced flag is one line."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def refuse(message: str) -> None:
        raise ConfigError(f"iwae {command}: {message} (`iwae {command} --help` shows the flags)")

    parser.error = refuse  # type: ignore[method-assign]
    return parser.parse_args(args)


def parsed(arg: str) -> Override:
    """One override, parsed by Hydra's grammar; a syntax error is one line."""
    try:
        return OverridesParser.create().parse_override(arg)
    except HydraException as e:
        raise ConfigError(
            f"cannot read the override {arg} ({first_line(e)}): write key=value, a list as key=[1,2], "
            "a sweep as key=1,2 (https://hydra.cc/docs/advanced/override_grammar/basic)"
        ) from None


def check_options(override: Override, options: list[str]) -> None:
    """Every value `override` gives its group (a list: logger=[a,b]; each of a sweep) must be an option."""
    group = override.key_or_group
    value = override.value()
    if isinstance(value, Glob):
        if not value.filter(options):
            raise ConfigError(f"{override.input_line} selects no option of {group}: choose {', '.join(options)}")
        return
    for given in sweep_values(override):
        if isinstance(given, list) and group not in LIST_GROUPS:
            raise ConfigError(
                f"{override.input_line}: {group} takes one option ({', '.join(options)}); "
                f"to train one run per option, sweep them: -m {group}={','.join(str(g) for g in given)}"
            )
        for name in given if isinstance(given, list) else [given]:
            if str(name) not in options:
                raise ConfigError(
                    f"{group}={name} is not an option of {group}: choose {', '.join(options)}"
                )


def sweep_values(override: Override) -> Iterator[Any]:
    """The values an override gives its key: each of a list sweep (`1,2`, `choice(...)`), the bounds of a
    range or interval, or the one value."""
    value = override.value()
    if isinstance(value, ChoiceSweep):
        yield from (v.text if isinstance(v, QuotedString) else v for v in value.list)
    elif isinstance(value, IntervalSweep):
        yield from (value.start, value.end)
    elif override.is_sweep_override():
        yield from []  # a range or glob: numbers or names checked where they are read
    else:
        yield value


def first_value(override: Override, loader: Any) -> str:
    """`override` as a plain override of its sweep's first value (an interval's lower bound), to compose."""
    value = override.value()
    if isinstance(value, Glob):
        chosen = value.filter(loader.get_group_options(override.key_or_group))
        text = chosen[0] if chosen else None
    elif isinstance(value, IntervalSweep):
        text = str(value.start)
    elif override.is_sweep_override():
        text = next(override.sweep_string_iterator(), None)
    else:
        return override.input_line
    if text is None:
        raise ConfigError(f"{override.input_line} gives {override.key_or_group} no value to take")
    prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++"}.get(override.type, "")
    package = f"@{override.package}" if override.package else ""
    return f"{prefix}{override.key_or_group}{package}={text}"


def check_key(command: str, override: Override, base: DictConfig) -> None:
    """A key the command reads (or one free by design), changed the way it can be: `+` only adds a free key,
    `~` deletes none the command reads, and a group of settings is not replaced by one value."""
    key = override.key_or_group
    if is_free(command, override):
        return
    line = override.input_line or key
    node = OmegaConf.select(base, key, default=None, throw_on_resolution_failure=False)
    exists = node is not None or has_key(base, key)
    if not exists:
        raise ConfigError(f"{line}: {key} is not a setting of iwae {command}; {settings_of(base, key, command)}")
    if override.type == OverrideType.ADD:
        raise ConfigError(f"{line}: {key} is already a setting of iwae {command}; write {line.lstrip('+')}")
    if override.type == OverrideType.DEL:
        raise ConfigError(f"{line} would remove the setting {key}, which iwae {command} reads: set it instead")
    value = override.value()
    if OmegaConf.is_dict(node) and not isinstance(value, dict) and not override.is_sweep_override():
        names = ", ".join(str(k) for k in node)
        raise ConfigError(f"{line}: {key} is a group of settings ({names}), not one value: set one as {key}.<name>=...")


def is_free(command: str, override: Override) -> bool:
    """Whether `override` sets a key that is free by design: below tags or hydra on every command, and where
    the command takes additions of its own (FREE_IN), one it adds, changes or removes there."""
    root, *below = re.split(r"[./]", override.key_or_group, maxsplit=1)
    adds = override.type in (OverrideType.ADD, OverrideType.FORCE_ADD, OverrideType.DEL)
    return (root in FREE_EVERYWHERE and bool(below)) or (adds and root in FREE_IN.get(command, ()))


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether `key` (dotted) is in `cfg`, its value null or not."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None, throw_on_resolution_failure=False) if parent else cfg
    return OmegaConf.is_dict(node) and leaf in node


def settings_of(cfg: DictConfig, key: str, command: str) -> str:
    """The settings beside `key`, to choose from: those of its nearest existing parent."""
    parts = key.split(".")
    for depth in range(len(parts) - 1, -1, -1):
        parent = ".".join(parts[:depth])
        node = OmegaConf.select(cfg, parent, default=None, throw_on_resolution_failure=False) if parent else cfg
        if OmegaConf.is_dict(node):
            names = ", ".join(str(k) for k in node if k != "hydra")
            owner = f"{parent}'s settings are" if parent else "its settings are"
            free = ", ".join(name for name in ("tags", *FREE_IN.get(command, ())))
            return f"{owner} {names} (+ adds a key only under {free})"
    return f"{parts[0]} holds one value, not settings"


def composed(command: str, config_name: str, overrides: list[str]) -> DictConfig:
    """The command's config with `overrides`, as Hydra composes it; its refusals are one line."""
    try:
        return compose(config_name, overrides, return_hydra_config=True)
    except MissingConfigException as e:
        raise ConfigError(f"iwae {command}: {first_line(e)}") from None
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        cause = f" ({first_line(e.__cause__)})" if e.__cause__ else ""
        raise ConfigError(f"iwae {command}: {' '.join(str(e).split())}{cause}") from None


def resolved(cfg: DictConfig, key: str) -> Any:
    """The value at `key` with its interpolations resolved; None where it is absent or needs a running job."""
    try:
        return OmegaConf.select(cfg, key, default=None)
    except OmegaConfBaseException:
        return None
