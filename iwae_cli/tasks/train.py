"""`iwae train` and `iwae switch-objective`: one run trained (or resumed) in its run directory, then finished
(figures, evaluation with evaluate=true); a `group=true` sweep's job trains its runs in lockstep (lockstep.py)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from iwae_cli.errors import ConfigError, RunError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.runs.records import CONFIG_NAME, resolve_run_dir, run_state
from iwae_cli.specs.run import run_spec
from iwae_cli.tasks.finish import evaluation_of, finish_run, record_refusal
from iwae_cli.tasks.job import in_multirun, output_dir, resume_command, run_log_handler, user_facing
from iwae_cli.tasks.lockstep import train_group
from iwae_cli.training.lifecycle import run_training


@user_facing
def train_task(cfg: DictConfig) -> str:
    """Train one configuration in its run directory (resuming it); optionally evaluate it afterwards."""
    if cfg.get("group_members"):  # a job of `iwae train -m ... group=true`: its cells in lockstep
        return train_group(cfg)
    run_dir = output_dir()
    try:
        spec = run_spec(cfg, resume_command("train"))
        evaluation = evaluation_of(cfg)
    except ConfigError as e:
        if in_multirun():  # a sweep's cell: keep why it did not run, for `iwae runs` and the tables
            record_refusal(run_dir, cfg, str(e))
        else:
            _remove_if_only_hydra_files(run_dir)
        raise
    with hold_run_dir(run_dir):  # one live process per run directory, evaluation included
        finish_run(run_training(spec, run_dir), evaluation)
    return str(run_dir)


@user_facing
def switch_objective_task(cfg: DictConfig) -> str:
    """Continue a finished run with another objective (Table 2): model and optimiser state carried over."""
    parent_dir = resolve_run_dir(cfg.run, cfg.output_root)
    if run_state(parent_dir) != "done":
        raise RunError(
            f"{parent_dir} has not finished its schedule; finish it first (re-run its iwae train command)"
        )
    child = OmegaConf.load(parent_dir / CONFIG_NAME)
    schedule = child.schedule
    child.schedule = {
        **OmegaConf.to_container(schedule),
        "name": f"{schedule.name}-switch",
        "passes": list(schedule.switch_passes),
        "learning_rates": list(schedule.switch_learning_rates),
    }
    child.model, child.k, child.parent = cfg.model, cfg.k, str(parent_dir)
    for key in (
        "device",
        "threads",
        "progress",
        "checkpoint_minutes",
        "evaluate",
        "eval",
        "active_units",
        "data_dir",
        "download",
        "output_root",
    ):
        child[key] = cfg[key]
    spec = run_spec(child, resume_command("switch-objective"))
    evaluation = evaluation_of(child)
    run_dir = parent_dir / f"switch-{cfg.model.name}-k{cfg.k}"
    handler = run_log_handler(run_dir / "switch_objective.log")
    try:
        with hold_run_dir(run_dir):
            finish_run(run_training(spec, run_dir, parent_dir / CHECKPOINT_NAME), evaluation)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return str(run_dir)


def _remove_if_only_hydra_files(run_dir: Path) -> None:
    """Hydra creates the run directory before the task can reject the config; don't leave that husk behind."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(run_dir)
        for parent in list(run_dir.parents)[:2]:  # the config-named parents, when now empty
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
