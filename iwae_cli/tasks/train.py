"""`iwae train` and `iwae switch-objective`: one run trained (or resumed) in its run directory, then finished
(figures, evaluation with evaluate=true); a `group=true` sweep's job trains its runs in lockstep (lockstep.py).

Under a sweeper that searches (`iwae train -m hydra/sweeper=optuna ...`, cli/search.py) each job returns its run's
`sweep_metric`, a number to minimise, read back from the run's metrics.json; a run refused or failed raises
instead, so the sweeper never sees a number the run did not produce."""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from iwae_cli.errors import ConfigError, RunError
from iwae_cli.evaluation.spec import EvalSpec
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.runs.records import CONFIG_NAME, METRICS_NAME, read_json, resolve_run_dir, run_state
from iwae_cli.specs.run import run_spec
from iwae_cli.tasks.finish import evaluation_of, finish_run, record_refusal
from iwae_cli.tasks.job import (
    in_multirun,
    output_dir,
    resume_command,
    run_log_handler,
    searching_sweep,
    user_facing,
)
from iwae_cli.tasks.lockstep import train_group
from iwae_cli.tasks.requeue import requeue_when_stopped
from iwae_cli.training.lifecycle import run_training

SWEEP_METRICS = ("auto", "nll", "valid_nll_bound")


@user_facing
def train_task(cfg: DictConfig) -> float | list[str] | None:
    """Train one configuration in its run directory (resuming it); optionally evaluate it afterwards. Returns
    its sweep_metric under a searching sweeper, else nothing (a group's job: its runs' directories)."""
    if cfg.get("group_members"):  # a job of `iwae train -m ... group=true`: its cells in lockstep
        return train_group(cfg)
    run_dir = output_dir()
    try:
        spec = run_spec(cfg, resume_command("train", run_dir))
        evaluation = evaluation_of(cfg)
        metric = sweep_metric(cfg, evaluation, spec.data.holdout)
    except ConfigError as e:
        if in_multirun():  # a sweep's cell: keep why it did not run, for `iwae runs` and the tables
            record_refusal(run_dir, cfg, str(e))
        else:
            _remove_if_only_hydra_files(run_dir)
        raise
    # one live process per run directory, evaluation included; under submitit a time limit requeues the job
    with hold_run_dir(run_dir), requeue_when_stopped([run_dir]):
        finish_run(run_training(spec, run_dir), evaluation)
    return metric.read(run_dir) if metric else None


@dataclass(frozen=True)
class SweepMetric:
    """The number a run returns to a searching sweeper: `sign` times metrics.json's entry[field]; the sign
    makes every sweep metric one to minimise (Optuna's default direction)."""

    name: str
    entry: str
    field: str
    sign: float

    def read(self, run_dir: Path) -> float:
        """The run's number; RunError where its metrics.json lacks it (never a stand-in)."""
        value = read_json(run_dir / METRICS_NAME).get(self.entry, {}).get(self.field)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RunError(
                f"{run_dir / METRICS_NAME} has no {self.entry}.{self.field}, so the run has no "
                f"sweep_metric={self.name} to return"
            )
        return self.sign * float(value)


def sweep_metric(cfg: DictConfig, evaluation: EvalSpec | None, holdout: bool) -> SweepMetric | None:
    """What the run returns, checked before it trains (conf/train.yaml, sweep_metric): None outside a
    searching sweep; under one, a ConfigError where the run would end without that number.

    nll: the NLL that evaluate=true records (eval.split, eval.k). valid_nll_bound: minus the validation bound
    after the last pass (the run's own objective at its k), which needs a validation set. auto: nll with
    evaluate=true, else valid_nll_bound."""
    choice = str(cfg.get("sweep_metric", "auto"))
    if choice not in SWEEP_METRICS:
        raise ConfigError(f"sweep_metric must be one of {', '.join(SWEEP_METRICS)}, got {choice}")
    if not searching_sweep():
        return None
    name = ("nll" if evaluation is not None else "valid_nll_bound") if choice == "auto" else choice
    if name == "nll":
        if evaluation is None:
            raise ConfigError("sweep_metric=nll is the NLL that the evaluation records: add evaluate=true")
        return SweepMetric(name, f"{evaluation.nll.split}_nll", "nll", 1.0)
    if not holdout:
        given = f"sweep_metric={choice}"
        if choice == "auto":
            given = "sweep_metric=auto without evaluate=true is valid_nll_bound, which"
        raise ConfigError(
            f"{given} needs a validation set, and protocol.holdout=false holds none out: use protocol=code (or "
            "protocol.holdout=true), or evaluate=true sweep_metric=nll"
        )
    return SweepMetric(name, "train", "final_valid_bound", -1.0)


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
        "logger",
        "tags",
    ):
        child[key] = cfg[key]
    spec = run_spec(child, resume_command("switch-objective"))
    evaluation = evaluation_of(child)
    run_dir = parent_dir / f"switch-{cfg.model.name}-k{cfg.k}"
    handler = run_log_handler(run_dir / "switch_objective.log")
    try:
        with hold_run_dir(run_dir), requeue_when_stopped([run_dir]):
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
