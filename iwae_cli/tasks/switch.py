"""`iwae switch-objective`: continue a finished run with another objective and k for its schedule's switch
stages (the paper's Table 2), keeping its model and optimiser state.

The second stage is the first run's settings plus what this command says. The settings that make the trained
model (identity.IDENTITY_SOURCES) are the first run's, except the objective and k this command names and any the
user sets here (`+schedule.switch_passes=[5]`: this command's config holds none of them, so whatever of them it
holds the user gave). Every other setting (where it runs, how it trains and is evaluated, its trackers) is this
command's: `compile=true threads=2 logger=tensorboard` reach the second stage as they reach any run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from iwae_cli.errors import RunError
from iwae_cli.pipeline.lifecycle import RunPlan
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.records import CONFIG_NAME, resolve_run_dir, run_state
from iwae_cli.specs.identity import IDENTITY_SOURCES, objective_label
from iwae_cli.specs.run import run_spec
from iwae_cli.tasks.finish import evaluation_of
from iwae_cli.tasks.job import resume_command, run_log_handler, user_facing
from iwae_cli.tasks.train import carry_out_runs

CHOSEN_HERE = ("model", "k")  # what switch-objective is for: the second stage's objective


@user_facing
def switch_objective_task(cfg: DictConfig) -> str:
    """Train the second stage in <run>/switch-<objective>-k<k>; returns that directory."""
    parent_dir = resolve_run_dir(cfg.run, cfg.output_root)
    if run_state(parent_dir) != "done":
        raise RunError(
            f"{parent_dir} has not finished its schedule; finish it first (re-run its iwae train command)"
        )
    stage = second_stage(cfg, parent_dir)
    spec = run_spec(stage, resume_command("switch-objective"))
    run_dir = parent_dir / f"switch-{objective_label(spec.objective)}"
    handler = run_log_handler(run_dir / "switch_objective.log")
    try:
        plan = RunPlan(spec, run_dir, evaluation_of(stage), parent_dir / CHECKPOINT_NAME)
        carry_out_runs([plan], {}, alone=True)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return str(run_dir)


def second_stage(cfg: DictConfig, parent_dir: Path) -> DictConfig:
    """The config of the run that continues the one in parent_dir (see the module's docstring), training for
    its schedule's switch stages."""
    stage = OmegaConf.load(parent_dir / CONFIG_NAME)
    with open_dict(stage):
        for key, value in cfg.items():
            if key == "run":
                continue
            given_here = key not in IDENTITY_SOURCES or key in CHOSEN_HERE
            both_nodes = OmegaConf.is_dict(value) and OmegaConf.is_dict(stage.get(key))
            stage[key] = value if given_here or not both_nodes else OmegaConf.merge(stage[key], value)
        schedule = stage.schedule
        stage.schedule = {
            **OmegaConf.to_container(schedule),
            "name": f"{schedule.name}-switch",
            "passes": list(schedule.switch_passes),
            "learning_rates": list(schedule.switch_learning_rates),
        }
        stage.parent = run_name_of(parent_dir, Path(str(cfg.output_root)))
    return stage


def run_name_of(run_dir: Path, output_root: Path) -> str:
    """A run's name relative to <output_root>/runs (its whole path where it lies elsewhere): the identity of a
    run that continues it does not change when the output root moves."""
    runs = output_root.resolve() / "runs"
    return str(run_dir.relative_to(runs)) if run_dir.is_relative_to(runs) else str(run_dir)
