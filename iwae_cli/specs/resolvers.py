"""The resolvers iwae's configs interpolate, registered when the configs' package is imported (conf/__init__.py),
so a config composed by any route (the CLI, a launcher's job process, Hydra's compose API) resolves. The spec
builders (and torch under them) are imported only when a resolver is called: composing a config for `--help`
stays light."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def run_name(*, _root_: Any) -> str:
    """`${iwae_run_name:}`: the run directory the whole config names (specs/run_dirs.py)."""
    from iwae_cli.specs.run_dirs import chosen_run_name

    return chosen_run_name(_root_)


def schedule_name(node: Any) -> str:
    """`${iwae_schedule:${schedule}}`: the schedule part of a run's name (a lockstep group's directory)."""
    from iwae_cli.specs.identity import schedule_label

    return schedule_label(node)


OmegaConf.register_new_resolver("iwae_run_name", run_name, replace=True)
OmegaConf.register_new_resolver("iwae_schedule", schedule_name, replace=True)
