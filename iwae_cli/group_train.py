"""Training a group of runs in lockstep: the schedule's loop (schedule_loop.py) over a GroupStep.

Every run of the group keeps what it has alone: its Trainer (model, optimiser, generator, position), run
directory, config.yaml, checkpoint, train_log.csv, train.log and metrics; the group's stacked state is written
back into the runs before each checkpoint and each validation. So evaluation, the tables, `iwae runs` and a
resume see ordinary runs, and a run may be resumed alone or in another group.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .errors import IwaeError, NumericalError, first_line
from .group_step import build_group_step
from .lock import hold_run_dir
from .run_lifecycle import check_resumable, prepare_run_dir, record_trained
from .run_spec import RunSpec
from .runs import write_status
from .runtime import Interrupted
from .schedule_loop import ScheduleLoop
from .train import COMPILE_MIN_STEPS, Trainer

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


class GroupTrainer(ScheduleLoop):
    """Runs that share lockstep_key, trained together. A run whose loss or gradient turns non-finite is named in
    `failed_runs` and the step raises NumericalError without moving any run (the others can be resumed from
    their checkpoints without it)."""

    def __init__(self, runs: Sequence[Trainer], compile_choice: str):
        first = runs[0]
        self.runs = list(runs)
        self.passes, self.rates, self.batch_size = first.passes, first.rates, first.batch_size
        self.train_x = first.train_x
        for run in self.runs[1:]:  # one copy of the training images for the group
            run.train_x = first.train_x
        self.positions = [run.position for run in self.runs]
        self.failed_runs: list[Trainer] = []
        if compile_choice == "auto" and self.remaining_steps < COMPILE_MIN_STEPS:
            compile_choice = "false"
        self.group_step = build_group_step(self.runs, compile_choice)

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


def train_lockstep(
    specs: Sequence[RunSpec], run_dirs: Sequence[Path], resume_hint: str
) -> tuple[list[Trainer], dict[Path, str]]:
    """Train (or resume, or skip if finished) every run, those that can share a step in lockstep groups, the
    others alone; each run's directory is locked, recorded and given its status as `run_training` does.

    Returns the runs that finished and why the others failed. A run whose loss turns non-finite fails alone: the
    rest of its group is resumed from their checkpoints without it. SIGINT/SIGTERM stops everything (Interrupted)
    with every unfinished run checkpointed and marked interrupted."""
    for spec, run_dir in zip(specs, run_dirs, strict=True):
        check_resumable(run_dir, spec.fingerprint)
        run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as owned:
        for run_dir in run_dirs:
            owned.enter_context(hold_run_dir(run_dir))
        settle_checkpoints(run_dirs)
        finished, failures, pending = [], {}, []
        for spec, run_dir in zip(specs, run_dirs, strict=True):
            prepare_run_dir(spec, run_dir)
            try:
                run = Trainer(spec, run_dir, compile_step=False)
            except IwaeError as e:
                failures[run_dir] = first_line(e)
                write_status(run_dir, "failed", failures[run_dir])
                continue
            if run.finished:
                write_status(run_dir, "done")
                finished.append(run)
            else:
                pending.append(run)
        while pending:
            groups, pending = lockstep_groups(pending), []
            for index, group in enumerate(groups):
                try:
                    trained = _train_group(group, resume_hint)
                except Interrupted as e:
                    for run in [r for later in groups[index:] for r in later] + pending:
                        write_status(run.run_dir, "interrupted", str(e))
                    raise
                except IwaeError as e:
                    failed = getattr(e, "failed_runs", None) or group
                    for run in failed:
                        failures[run.run_dir] = first_line(e)
                        write_status(run.run_dir, "failed", failures[run.run_dir])
                    # the others go back to their last checkpoints, to go on as they would have alone
                    pending += [
                        Trainer(r.spec, r.run_dir, compile_step=False) for r in group if r not in failed
                    ]
                    continue
                finished += trained
    return finished, failures


def _train_group(group: list[Trainer], resume_hint: str) -> list[Trainer]:
    """Fit one lockstep group (a group of one trains with its own, possibly compiled, step); records each run."""
    settings = group[0].spec.settings
    for run in group:
        write_status(run.run_dir, "running")
    if len(group) == 1:
        loop: ScheduleLoop = group[0]
        group[0].compiled_step = group[0].compiled_step_for(settings.compile)
    else:
        loop = GroupTrainer(group, settings.compile)  # (compiles: seconds to a minute)
        log.info("training %d runs in lockstep: %s", len(group), ", ".join(str(r.run_dir) for r in group))
    try:
        loop.fit(settings.checkpoint_minutes, settings.progress, resume_hint)
    except NumericalError as e:
        e.failed_runs = getattr(loop, "failed_runs", None) or group
        raise
    for run in group:
        record_trained(run)
    return group
