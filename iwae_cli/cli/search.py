"""`iwae train -m` under a sweeper that searches (Hydra's Optuna sweeper, `hydra/sweeper=optuna`): each trial an
ordinary run in its own directory, returning one number (tasks/train.py, `sweep_metric`).

A lockstep group (`group=true`) trains several runs in one job and has no single number to return, so it is
refused. Each trial's run directory is named as any run's is (specs/identity.py): every setting that changes the
trained model, objective parameters included, is in its name, so two trials share a directory only where they
train the same model.
"""

from __future__ import annotations

import os

from iwae_cli.cli.group_sweep import last_value
from iwae_cli.errors import ConfigError

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
    return [a for a in args if not a.startswith("group=")] + ["group=false"]  # not auto: one run per job


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
