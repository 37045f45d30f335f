"""`iwae train`: one run trained (or resumed) in its run directory and finished (figures, evaluation with
evaluate=true) by the run lifecycle (iwae_cli.pipeline.lifecycle); a `group=true` sweep's job carries out its
runs together, in lockstep (lockstep.py).

Under a sweeper that searches (`iwae train -m hydra/sweeper=optuna ...`, cli/search.py) each job returns its run's
`sweep_metric`, a number to minimise, read back from the run's metrics.json; a run refused or failed raises
instead, so the sweeper never sees a number the run did not produce."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from iwae_cli.core.setting_names import SWEEP_METRICS
from iwae_cli.errors import ConfigError, IwaeError, RunError
from iwae_cli.evaluation.spec import EvalSpec
from iwae_cli.pipeline.lifecycle import RunPlan, carry_out
from iwae_cli.runs.records import METRICS_NAME, read_json
from iwae_cli.runs.run_log import LOG_NAME, held_run_log
from iwae_cli.specs.run import data_spec, run_spec
from iwae_cli.tasks.finish import evaluation_of, record_refusal
from iwae_cli.tasks.job import in_multirun, output_dir, resume_command, searching_sweep, user_facing
from iwae_cli.tasks.lockstep import group_resume_command, member_configs
from iwae_cli.tasks.requeue import requeue_when_stopped


@user_facing
def train_task(cfg: DictConfig) -> float | list[str] | None:
    """Train one configuration in its run directory (resuming it); optionally evaluate it afterwards. Returns
    its sweep_metric under a searching sweeper, else nothing (a group's job: its runs' directories)."""
    if cfg.get("group_members"):  # a job of `iwae train -m ... group=true`: its cells in lockstep
        configs = member_configs(cfg)
        if len(configs) < len(cfg.group_members):
            raise ConfigError(
                "two members of the group name the same run directory; give each its own seed or model"
            )
        hint = group_resume_command(cfg)
        with held_run_log(output_dir() / LOG_NAME) as open_log:  # the whole job's log, in its groups/ directory
            open_log()
            train_runs(configs, lambda _: hint, alone=False)
        return [str(d) for d in configs]
    run_dir = output_dir()
    try:
        metric = sweep_metric(cfg, evaluation_of(cfg), data_spec(cfg).holdout)
    except ConfigError as e:
        refuse(run_dir, cfg, e)
        raise
    train_runs({run_dir: cfg}, lambda d: resume_command("train", d), alone=True)
    return metric.read(run_dir) if metric else None


def train_runs(configs: dict[Path, DictConfig], resume_hint: Callable[[Path], str], alone: bool) -> None:
    """Check each config and carry its run out (pipeline.lifecycle: a group's runs in lockstep); a refused
    config is recorded in its run directory. `alone`: one run, whose error is raised as it is; else RunError
    where any run of the group was refused or failed (the others' results kept)."""
    plans, refused = [], {}
    for run_dir, member in configs.items():
        try:
            plans.append(RunPlan(run_spec(member, resume_hint(run_dir)), run_dir, evaluation_of(member)))
        except ConfigError as e:
            if alone:
                refuse(run_dir, member, e)
                raise
            record_refusal(run_dir, member, str(e))
            refused[run_dir] = e
    carry_out_runs(plans, refused, alone)


def carry_out_runs(plans: list[RunPlan], refused: dict[Path, IwaeError], alone: bool) -> None:
    """pipeline.lifecycle.carry_out inside a submitit job's requeue guard (tasks/requeue.py); the first error
    raised as train_runs says."""
    with requeue_when_stopped([plan.run_dir for plan in plans]):
        failures = {**refused, **carry_out(plans)}
    if failures:
        first, error = next(iter(failures.items()))
        if alone:
            raise error
        total = len(plans) + len(refused)
        raise RunError(f"{len(failures)} of {total} runs of the group failed; {first}: {error}")


def refuse(run_dir: Path, cfg: DictConfig, error: ConfigError) -> None:
    """A single run whose config was refused: a sweep's cell keeps why it did not run (for `iwae runs` and the
    tables); a lone command leaves no directory behind."""
    if in_multirun():
        record_refusal(run_dir, cfg, str(error))
    else:
        _remove_if_empty(run_dir)


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


def sweep_metric(cfg: DictConfig, evaluation: EvalSpec | None, holdout: int) -> SweepMetric | None:
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


def _remove_if_empty(run_dir: Path) -> None:
    """Hydra creates the run directory before the task can reject the config; don't leave that husk behind."""
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
        for parent in list(run_dir.parents)[:2]:  # the config-named parents, when now empty
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
