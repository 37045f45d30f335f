"""`profile=<name>` on the commands that train or evaluate one run, meaning what it means to the table commands.

The table commands take a profile as a config group and hand its settings to the jobs they launch
(tasks/tables/sweep.py). The other commands have no such group: here `profile=<name>` is replaced, where it
stands on the command line, by the overrides a table's job of that command is given (specs/profiles.py, the one
mapping both use). So `iwae train profile=medium dataset=mnist layers=1 model=iwae k=50 seed=0` trains the run
directory `iwae table1 profile=medium` trains for that cell (same name, same fingerprint) and, with
evaluate=true, evaluates it as table1 does. An override the user writes (schedule=quick, eval.k=100) wins over
the profile's; the settings chosen are in the run's config.yaml and in the resume command it prints.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from iwae_cli.errors import ConfigError, first_line
from iwae_cli.specs.profiles import (
    Profile,
    evaluation_overrides,
    load_profile,
    profile_names,
    schedule_override,
)

# Commands whose profile is a config group of their own: Hydra reads it (and sweeps it with -m).
TABLE_COMMANDS = ("table1", "table2", "table-extra")

# What profile=<name> sets for each command, as the table that runs such a job sets it: table1 trains (and
# evaluates, pruned as the profile says), table2 continues runs with switch-objective (never pruned), and the
# active units are counted with the shared active_units settings, which no profile changes. eval-nll records
# only the pruned NLL when asked to prune, so it is given the profile's k and test images alone.
PROFILE_OVERRIDES: dict[str, Callable[[Profile], list[str]]] = {
    "train": lambda p: [schedule_override(p), *evaluation_overrides(p, p.prune_inactive)],
    "switch-objective": lambda p: evaluation_overrides(p, prune_inactive=False),
    "eval-nll": lambda p: evaluation_overrides(p, prune_inactive=False),
    "active-units": lambda p: [],
}
TAKERS = ", ".join([*PROFILE_OVERRIDES, *TABLE_COMMANDS])
# Why the other experiment commands take none.
NO_PROFILE = {
    "frontier": "its recipes set its runs' schedules (recipes.medium is profile=medium's schedule=paper4) and "
    "valid_k/valid_examples score them: choose recipes with ~recipes.<name> or +recipes.<name>=[...]",
    "grad-snr": "it measures the gradients of a trained run (run=...), which no table does",
    "bench": "it times the model's shapes, which no profile changes",
}


def override_key(arg: str) -> str:
    """The key an override sets: `++eval.k=100` -> `eval.k`."""
    return arg.split("=", 1)[0].lstrip("+~")


def with_profile(command: str, args: list[str]) -> list[str]:
    """`args` with `profile=<name>` (the last one given) replaced by its overrides for `command`, less any the
    user wrote; unchanged for the table commands, and where no profile is given."""
    given = [i for i, a in enumerate(args) if "=" in a and not a.startswith("-") and override_key(a) == "profile"]
    if command in TABLE_COMMANDS or not given:
        return args
    if command not in PROFILE_OVERRIDES:
        why = NO_PROFILE.get(command, "no table runs it")
        raise ConfigError(f"iwae {command} takes no profile=: {why}; profile= is for {TAKERS}")
    profile = load_profile(profile_name(args[given[-1]]))
    explicit = {override_key(a) for a in args if "=" in a and not a.startswith("-")}
    overrides = [o for o in PROFILE_OVERRIDES[command](profile) if override_key(o) not in explicit]
    if overrides:
        typer.echo(f"profile={profile.name}: {' '.join(overrides)}", err=True)
    at = given[-1]
    return [a for i, a in enumerate(args[:at]) if i not in given] + overrides + args[at + 1 :]


def profile_name(arg: str) -> str:
    """The one profile `profile=<name>` names; a sweep over profiles is refused, as is a name that is no
    profile's (listing them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    choices = f"choose one of {', '.join(profile_names())}"
    try:
        override = OverridesParser.create().parse_override(arg)
    except HydraException as e:
        raise ConfigError(f"cannot read {arg} ({first_line(e)}): {choices}") from None
    if override.is_sweep_override():
        raise ConfigError(f"{arg}: profile takes one name per command (its schedule and evaluation go together): "
                          f"run one command per profile ({choices})")
    return str(override.value())
