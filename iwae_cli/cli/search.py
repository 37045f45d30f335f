"""`iwae train -m` under a sweeper that searches (Hydra's Optuna sweeper, `hydra/sweeper=optuna`): each trial an
ordinary run in its own directory, returning one number (tasks/train.py, `sweep_metric`).

Two things differ from Hydra's basic sweeper. A lockstep group (`group=true`) trains several runs in one job and
has no single number to return, so it is refused. And a run's directory is named from its configuration, but
not from every setting (`model.alpha` is not in it): two trials differing only there would share one directory
and the second would be refused as another configuration's. Each trial's directory therefore gets the values it
tried appended to its usual name, for every searched setting the name does not already show.
"""

from __future__ import annotations

import os
from importlib.resources import files

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from iwae_cli.errors import ConfigError, first_line
from iwae_cli.tasks.group_sweep import last_value

SWEEPER_PARAMS = "hydra.sweeper.params."


def searching_sweeper(args: list[str]) -> str | None:
    """The sweeper `args` choose, when it is one that searches (any but Hydra's basic sweeper)."""
    if not any(flag in args for flag in ("-m", "--multirun")):
        return None
    sweeper = last_value(args, "hydra/sweeper", "basic")
    return None if sweeper == "basic" else sweeper


def search_arguments(args: list[str]) -> list[str]:
    """`iwae train`'s arguments for a searching sweeper (see the module's docstring), Optuna's messages routed
    through Hydra's logging; other arguments unchanged."""
    sweeper = searching_sweeper(args)
    if sweeper is None:
        return args
    if sweeper == "optuna":
        log_optuna_through_hydra()
    if last_value(args, "group", "false").lower() == "true":
        raise ConfigError(
            f"group=true trains several runs in one job, which returns no single number for hydra/sweeper="
            f"{sweeper} to optimise: drop group=true"
        )
    args = [a for a in args if not a.startswith("group=")] + ["group=false"]  # not auto: one run per job
    if any(a.startswith("hydra.sweep.subdir=") for a in args):
        return args  # the user names the trials' directories
    suffix = "".join(f"-{key}_{value}" for key, value in searched_values(args))
    return [*args, f"hydra.sweep.subdir=${{run_name}}{suffix}"] if suffix else args


def searched_values(args: list[str]) -> list[tuple[str, str]]:
    """(setting, interpolation of the trial's value) for each searched setting the run's name does not show."""
    train = OmegaConf.create(files("iwae_cli.conf").joinpath("train.yaml").read_text())
    name = last_value(args, "run_name", str(OmegaConf.to_container(train)["run_name"]))
    values = []
    for key in searched_keys(args):
        group = "." not in key and files("iwae_cli.conf").joinpath(key).is_dir()
        shown = (f"${{{key}}}", f"${{{key}.", f"choices.{key}}}") if group else (f"${{{key}}}",)
        if not any(s in name for s in shown):
            values.append((key, f"${{hydra:runtime.choices.{key}}}" if group else f"${{{key}}}"))
    return values


def searched_keys(args: list[str]) -> list[str]:
    """The settings a sweep varies: those given a sweep on the command line (`model.alpha=interval(0,1)`,
    `k=choice(5,50)`, `seed=0,1`) or in hydra.sweeper.params."""
    parser = OverridesParser.create()
    keys = []
    for arg in args:
        if arg.startswith(SWEEPER_PARAMS):
            keys.append(arg[len(SWEEPER_PARAMS) :].split("=", 1)[0])
        elif "=" in arg and not arg.startswith(("-", "hydra.", "hydra/")):
            try:
                override = parser.parse_override(arg)
            except HydraException as e:
                raise ConfigError(f"cannot read {arg} ({first_line(e)})") from None
            if override.is_sweep_override():
                keys.append(override.get_key_element().lstrip("+~"))
    return list(dict.fromkeys(keys))


def log_optuna_through_hydra() -> None:
    """Optuna's messages through Hydra's logging, not its own handler: that one repeats Hydra's "Study name"
    line in colour, and keeps the stderr of the first command that imported optuna (in-process tests)."""
    # optuna 2 is pinned with SQLAlchemy 1.4 (pyproject.toml, `sweepers`): its warning about 2.0 says nothing new
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    try:
        import optuna
    except ImportError:
        return  # Hydra says that hydra/sweeper=optuna is not installed
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
