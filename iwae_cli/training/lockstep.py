"""Training a group of runs in lockstep: the schedule's loop (schedule_loop.py) over a GroupStep. Which runs
train together, and the life of each run around its training, is iwae_cli/pipeline/lifecycle.py's.

Every run of the group keeps what it has alone: its Trainer (model, optimiser, generator, position), run
directory, config.yaml, checkpoint, train_log.csv, train.log, trackers and metrics; the group's stacked state
is written back into the runs before each checkpoint and each validation. So evaluation, the tables, `iwae
runs` and a resume see ordinary runs, and a run may be resumed alone or in another group.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from iwae_cli.core.objectives import loss_divisor
from iwae_cli.errors import ConfigError, Interrupted, IwaeError, NumericalError
from iwae_cli.runs import checkpoint as ckpt
from iwae_cli.training.compile import compiled_or_none
from iwae_cli.training.lockstep_step import GroupStep, Member
from iwae_cli.training.schedule_loop import ScheduleLoop
from iwae_cli.training.spec import RunSpec
from iwae_cli.training.trainer import Trainer, TrainingData, training_data

log = logging.getLogger(__name__)


def lockstep_key(run: Trainer) -> tuple:
    """Runs with equal keys can share a step: the same data, shapes, schedule, optimiser and device, standing at
    the same place of the schedule with the same number of optimiser steps taken, and an objective that is a
    bound of the log weights (the others train alone)."""
    spec, pos = run.spec, run.position
    steps = sorted({float(s["step"]) for s in run.optimizer.state.values()})
    return (
        spec.data,
        spec.schedule,
        spec.model.arch,
        spec.objective.k,
        spec.optim,
        str(run.device),
        (pos.stage, pos.epoch_in_stage, pos.step_in_epoch),
        tuple(steps),
        spec.objective.log_weight_bound() is not None,
    )


def lockstep_groups(runs: Sequence[Trainer]) -> list[list[Trainer]]:
    """The runs partitioned by lockstep_key, in their order; a run that cannot share a step is a group of one."""
    groups: dict[tuple, list[Trainer]] = {}
    for run in runs:
        key = lockstep_key(run)
        groups.setdefault(key if key[-1] else (id(run),), []).append(run)
    return list(groups.values())


def member_of(run: Trainer) -> Member:
    """A Trainer's run as a Member (ConfigError for an objective that is not a bound of log w)."""
    bound = run.spec.objective.log_weight_bound()
    if bound is None:
        raise ConfigError(f"model={run.spec.objective.name} is not a bound of log w: it trains alone")
    divisor = loss_divisor(run.spec.objective.reduction, run.batch_size)
    return Member(run.model, run.optimizer, run.generator, bound, divisor)


def build_group_step(runs: Sequence[Trainer], choice: str, remaining_steps: int) -> GroupStep:
    """The runs' group step, compiled as `compile` says (compile.compiled_or_none: auto compiles long runs where
    torch.compile works), else the plain vmapped step."""
    first = runs[0]
    setup = ([member_of(run) for run in runs], first.spec.optim, first.rates[0], first.k, first.batch_size)
    compiled = compiled_or_none(
        choice, remaining_steps, lambda: GroupStep(*setup, compiled=True), "the group's training step"
    )
    return compiled or GroupStep(*setup, compiled=False)


class GroupTrainer(ScheduleLoop):
    """Runs that share lockstep_key, trained together. A run whose loss or gradient turns non-finite is named in
    `failed_runs` and the step raises NumericalError without moving any run (the others can be resumed from
    their checkpoints without it)."""

    def __init__(self, runs: Sequence[Trainer]):
        first = runs[0]
        self.runs = list(runs)
        self.settings = first.settings
        self.schedule, self.passes, self.rates = first.schedule, first.passes, first.rates
        self.batch_size = first.batch_size
        self.train_x = first.train_x  # the members share one copy (the lifecycle gives them one TrainingData)
        self.positions = [run.position for run in self.runs]
        self.failed_runs: list[Trainer] = []
        self.group_step = build_group_step(self.runs, self.settings.compile, self.remaining_steps)

    @property
    def where(self) -> str:
        return "each run's directory (" + ", ".join(str(run.run_dir) for run in self.runs) + ")"

    def step(self, batch: torch.Tensor) -> torch.Tensor:
        sums, finite = self.group_step(batch)
        if not bool(finite.all()):
            self.failed_runs = [run for run, ok in zip(self.runs, finite.tolist(), strict=True) if not ok]
            names = ", ".join(str(run.run_dir) for run in self.failed_runs)
            raise NumericalError(f"non-finite loss or gradient in {names}")
        return sums

    def set_learning_rate(self, lr: float) -> None:
        self.group_step.set_learning_rate(lr)

    def save(self) -> None:
        """Checkpoint every run in two phases, so that a kill at any moment leaves the runs resumable at one
        place: each run's next checkpoint is written whole first, then each replaces its checkpoint.pt (a kill
        between the replacements is completed by `settle_checkpoints`)."""
        self.group_step.write_back()
        for run in self.runs:
            run.save(ckpt.NEXT_CHECKPOINT_NAME)
        for run in self.runs:
            os.replace(run.run_dir / ckpt.NEXT_CHECKPOINT_NAME, run.run_dir / ckpt.CHECKPOINT_NAME)

    def end_epoch(self) -> None:
        self.group_step.write_back()
        for run in self.runs:
            try:
                run.end_epoch()
            except NumericalError:
                self.failed_runs = [run]
                raise


def schedule_place(path: Path) -> tuple[int, int, int] | None:
    """Where the checkpoint at path stands in its schedule (None: no checkpoint)."""
    if not path.exists():
        return None
    position = ckpt.load_checkpoint(path)["position"]
    return position["stage"], position["epoch_in_stage"], position["step_in_epoch"]


def settle_checkpoints(run_dirs: Sequence[Path]) -> None:
    """Finish or undo a group checkpoint that a kill interrupted (GroupTrainer.save). If some run already
    replaced its checkpoint.pt with the next one, the phase of replacements had begun: the runs still holding
    a next checkpoint of that place take it. Otherwise the next checkpoints are incomplete or unneeded and are
    removed, and every run resumes from its checkpoint.pt."""
    pending = [d for d in run_dirs if (d / ckpt.NEXT_CHECKPOINT_NAME).exists()]
    if not pending:  # the usual case: no checkpoint to read
        return
    places = {schedule_place(d / ckpt.NEXT_CHECKPOINT_NAME) for d in pending}
    replaced = {schedule_place(d / ckpt.CHECKPOINT_NAME) for d in run_dirs if d not in pending}
    for run_dir in pending:
        if len(places) == 1 and places <= replaced:
            os.replace(run_dir / ckpt.NEXT_CHECKPOINT_NAME, run_dir / ckpt.CHECKPOINT_NAME)
            log.info("%s: completed the group checkpoint a kill interrupted", run_dir)
        else:
            (run_dir / ckpt.NEXT_CHECKPOINT_NAME).unlink()


class SharedData:
    """One TrainingData per distinct (data, training examples, device, validation seed): the runs of a group
    hold one copy of the images."""

    def __init__(self) -> None:
        self.loaded: dict[tuple, TrainingData] = {}

    def __call__(self, spec: RunSpec) -> TrainingData:
        settings = spec.settings
        key = (spec.data, spec.schedule.train_examples, str(settings.device), settings.validation_seed)
        if key not in self.loaded:
            self.loaded[key] = training_data(spec)
        return self.loaded[key]


class GroupFailure(IwaeError):
    """An expected error that stopped a lockstep group: the runs it failed (a non-finite loss fails only the
    runs it hit; any other error fails the whole group)."""

    def __init__(self, error: IwaeError, runs: Sequence[Trainer]):
        super().__init__(str(error), error.exit_code)
        self.runs = list(runs)


def fit_group(group: list[Trainer]) -> None:
    """Fit one lockstep group (a group of one trains with its own, possibly compiled, step); GroupFailure
    naming the runs an expected error stopped (a non-finite loss: the runs it hit; else all of them)."""
    loop: ScheduleLoop | None = None
    try:
        loop = group[0] if len(group) == 1 else GroupTrainer(group)  # (a group compiles: seconds)
        if len(group) > 1:
            log.info("training %d runs in lockstep: %s", len(group), ", ".join(str(r.run_dir) for r in group))
        loop.fit()
    except Interrupted:
        raise
    except IwaeError as e:
        hit = loop.failed_runs if isinstance(loop, GroupTrainer) and isinstance(e, NumericalError) else []
        raise GroupFailure(e, hit or group) from e
