"""A run's life from opening its directory to "finished", one code path for every run: a solo `iwae train`, a
`group=true` sweep's job, a table's cell and switch-objective's second stage (a solo run is a group of one).

1. open: each run directory locked (here only, once per run, until its evaluation is done), its log file
   (train.log) opened only for a run that will work (runs/run_log.py: a re-run of a finished run writes nothing
   into its directory, nor does a process refused because the run is busy), a group checkpoint a kill
   interrupted settled, the run's checkpoint read once and matched against its identity (a checkpoint of
   another configuration is refused before anything is written), config.yaml and the metrics' "run" entry written
   for a run that will train (a finished run's record is left as it was written);
2. train: the runs that can share a step in lockstep groups (training/lockstep.py), the others alone, with
   checkpoints and the status running, interrupted or failed;
3. evaluate: the learning curve, samples, the evaluation the run asks for (evaluate=true) and its trackers;
4. finished: the training metrics and the status done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iwae_cli.core.atomic import atomic_write_text
from iwae_cli.core.provenance import made_from
from iwae_cli.errors import Interrupted, IwaeError, RunError, first_line
from iwae_cli.evaluation.finished_run import evaluate_finished_run
from iwae_cli.evaluation.spec import EvalSpec
from iwae_cli.reports.plots import plot_learning_curve, plot_samples
from iwae_cli.runs import checkpoint as ckpt
from iwae_cli.runs.history import finite_or_none
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.runs.log_context import about
from iwae_cli.runs.records import (
    CONFIG_NAME,
    METRICS_NAME,
    check_intact,
    read_json,
    record_metrics,
    run_state,
    write_status,
)
from iwae_cli.runs.run_log import LOG_NAME, held_run_log
from iwae_cli.tracking.record import figures
from iwae_cli.tracking.tracker import RunTracker
from iwae_cli.training.lockstep import (
    GroupFailure,
    SharedData,
    fit_group,
    lockstep_groups,
    settle_checkpoints,
)
from iwae_cli.training.spec import RunSpec
from iwae_cli.training.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """One run to carry out: its spec, directory, the evaluation it asks for (None: none), for a run that
    continues another (switch-objective) that run's checkpoint, and the name of its log file."""

    spec: RunSpec
    run_dir: Path
    evaluation: EvalSpec | None = None
    parent_checkpoint: Path | None = None
    log_name: str = LOG_NAME


def carry_out(plans: Sequence[RunPlan]) -> dict[Path, IwaeError]:
    """Open, train, evaluate and finish every run; returns the error that stopped each run that failed (the
    others finished; each failed run's status says why).

    RunError before any run is written where a directory is busy, damaged (runs/records.py damage) or holds
    another configuration's checkpoint;
    Interrupted on SIGINT/SIGTERM, every unfinished run checkpointed and marked interrupted."""
    by_dir = {plan.run_dir: plan for plan in plans}
    with ExitStack() as owned:
        for plan in plans:
            owned.enter_context(own(plan.run_dir))
            check_intact(plan.run_dir)  # a damaged record stops the command before anything is written
        open_log = {
            plan.run_dir: owned.enter_context(held_run_log(plan.run_dir / plan.log_name, len(plans) > 1))
            for plan in plans
        }
        settle_checkpoints(list(by_dir))
        checkpoints = {plan.run_dir: own_checkpoint(plan) for plan in plans}
        shared, finished, failures, pending = SharedData(), [], {}, []
        for plan in plans:
            clear_leftovers(plan.run_dir)
            try:
                run = start(plan, checkpoints[plan.run_dir], shared)
            except IwaeError as e:
                open_log[plan.run_dir]()
                failures[plan.run_dir] = e
                write_status(plan.run_dir, "failed", first_line(e))
                continue
            if run.finished:  # its record stays as it was written (by whichever version made it)
                log.info("%s has finished its schedule; not training again", run.run_dir, extra=run.log_extra)
                if run_state(run.run_dir) != "done":  # stopped after its last step
                    write_status(run.run_dir, "done")
                finished.append(run)
            else:
                open_log[plan.run_dir]()
                describe(plan.spec, plan.run_dir)
                pending.append(run)
        trained = train(pending, shared, failures, by_dir)
        for run in finished + trained:
            with about(run.run_dir):
                finish(run, by_dir[run.run_dir].evaluation, redraw=run in trained)
    return failures


def own(run_dir: Path) -> Any:
    """The run directory's lock (created where new): one live process per run (runs/lock.py)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in its place, a read-only parent
        raise RunError(
            f"cannot create the run directory {run_dir} ({e.strerror or e}); move away what is there"
        ) from None
    return hold_run_dir(run_dir)


def own_checkpoint(plan: RunPlan) -> dict[str, Any] | None:
    """The run's checkpoint, read once and matched against its identity (RunError naming what differs)."""
    path = plan.run_dir / ckpt.CHECKPOINT_NAME
    if not path.exists():
        return None
    state = ckpt.load_checkpoint(path, plan.spec.settings.device)
    ckpt.refuse_other_configuration(path, plan.spec.recognise(state["config"]))
    return state


def start(plan: RunPlan, checkpoint: dict[str, Any] | None, shared: SharedData) -> Trainer:
    """The run's Trainer at the place its checkpoint stands (a new run: at the start, from its parent's state
    where it continues one); it logs to the run's trackers."""
    parent = None
    if checkpoint is None and plan.parent_checkpoint is not None:
        parent = ckpt.load_checkpoint(plan.parent_checkpoint, plan.spec.settings.device)
    tracker = RunTracker(plan.spec.tracking, plan.run_dir)
    return Trainer(plan.spec, plan.run_dir, checkpoint, parent, data=shared(plan.spec), tracker=tracker)


def clear_leftovers(run_dir: Path) -> None:
    """Once this process owns run_dir: remove what a killed atomic write left, and a group's next checkpoint
    that a kill interrupted (settle_checkpoints has used it where it was complete)."""
    for stale in run_dir.glob(".*.tmp"):  # only safe to remove once we own the directory
        stale.unlink(missing_ok=True)
    (run_dir / ckpt.NEXT_CHECKPOINT_NAME).unlink(missing_ok=True)


def describe(spec: RunSpec, run_dir: Path) -> None:
    """A run about to train: its config.yaml and the metrics' "run" summary, as this command runs it."""
    atomic_write_text(run_dir / CONFIG_NAME, spec.config_yaml)
    record_metrics(run_dir, {"run": spec.summary})


def train(
    pending: list[Trainer], shared: SharedData, failures: dict[Path, IwaeError], plans: dict[Path, RunPlan]
) -> list[Trainer]:
    """Train the runs, those that can share a step in lockstep groups; returns those that finished and adds
    why the others failed to `failures`. A run whose loss turns non-finite fails alone: the rest of its group
    goes back to its checkpoints and on without it."""
    finished: list[Trainer] = []
    while pending:
        groups, pending = lockstep_groups(pending), []
        for index, group in enumerate(groups):
            with ExitStack() as phase:  # the trackers' training phase (tracking/tracker.py)
                for run in group:
                    phase.enter_context(run.tracker)
                    write_status(run.run_dir, "running")
                try:
                    fit_group(group)
                except Interrupted as e:
                    for run in [r for later in groups[index:] for r in later] + pending:
                        write_status(run.run_dir, "interrupted", str(e))
                    raise
                except GroupFailure as e:
                    for run in e.runs:
                        failures[run.run_dir] = e
                        write_status(run.run_dir, "failed", first_line(e))
                        run.tracker.close("FAILED")
                    # the others start again from their checkpoints (their trackers skip the epochs they redo)
                    pending += [
                        start(plans[r.run_dir], own_checkpoint(plans[r.run_dir]), shared)
                        for r in group
                        if r not in e.runs
                    ]
                    continue
                except Exception as e:  # a bug, not an expected error: the runs say so, the traceback shows it
                    for run in group:
                        write_status(run.run_dir, "failed", first_line(e))
                    raise
            for run in group:
                record_trained(run)
            finished += group
    return finished


def record_trained(trainer: Trainer) -> None:
    """The training metrics of a run that finished its schedule, and its status: done."""
    last = trainer.position.history[-1] if trainer.position.history else {}
    record_metrics(
        trainer.run_dir,
        {
            "train": {
                "passes_done": trainer.position.passes_done,
                "seconds": round(trainer.position.train_seconds, 2),
                "final_train_bound": last.get("train_bound"),
                "final_valid_bound": finite_or_none(last.get("valid_bound")),
                **made_from(trainer.position.passes_done, True, next(trainer.model.parameters()).device),
            }
        },
    )
    write_status(trainer.run_dir, "done")


def finish(trainer: Trainer, evaluation: EvalSpec | None, redraw: bool) -> None:
    """A trained run's learning curve and samples (drawn again only where it trained now or they are
    missing), then its evaluation where asked and not recorded yet (of the model in memory: the checkpoint
    holds the same parameters); the trackers get what they lack of its epochs (all of them where a tracker was
    turned on after training), its results and figures."""
    run_dir = trainer.run_dir
    curve, samples = run_dir / "learning_curve.png", run_dir / "samples.png"
    with trainer.tracker as tracker:
        # first, so that an evaluation that fails marks the tracker runs failed
        tracker.log_epochs(trainer.position.history, trainer.examples_per_epoch)
        if redraw or not curve.exists():
            plot_learning_curve(trainer.position.history, curve, run_dir.name)
        if redraw or not samples.exists():
            plot_samples(trainer.model, samples, seed=trainer.spec.model.seed)
        if evaluation is not None:
            trainer.model.eval()
            evaluate_finished_run(
                run_dir, trainer.model, read_json(run_dir / METRICS_NAME), evaluation, trainer.position.passes_done
            )
        tracker.finish(read_json(run_dir / METRICS_NAME), figures(run_dir))
    log.info("run directory: %s", run_dir)


def record_refusal(run_dir: Path, config_yaml: str, summary: dict[str, Any], message: str) -> None:
    """A run directory that says its configuration was refused: config.yaml, the metrics' "run" summary and a
    failed status with the one-line reason. Left as it is when the directory already holds a run of its own,
    or another process is working in it (its lock says so to `iwae runs` and the tables)."""
    if (run_dir / CONFIG_NAME).exists():
        return
    with ExitStack() as held:
        try:
            held.enter_context(own(run_dir))
        except RunError:  # busy: the process training it has the say
            return
        if not (run_dir / CONFIG_NAME).exists():  # nor did one start since the first look
            atomic_write_text(run_dir / CONFIG_NAME, config_yaml)
            record_metrics(run_dir, {"run": summary})
            write_status(run_dir, "failed", message)
