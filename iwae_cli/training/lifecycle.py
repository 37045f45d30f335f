"""A run directory's life around its training: one owner at a time, config.yaml, the metrics' "run" summary,
status.json (running, interrupted, failed, done), the trackers watching its epochs and the training metrics at
the end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from iwae_cli.errors import Interrupted, first_line
from iwae_cli.runs import checkpoint as ckpt
from iwae_cli.runs.atomic import atomic_write_text
from iwae_cli.runs.history import finite_or_none
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.runs.records import CONFIG_NAME, record_metrics, write_status
from iwae_cli.tracking.tracker import RunTracker
from iwae_cli.training.spec import RunSpec
from iwae_cli.training.trainer import Trainer

log = logging.getLogger(__name__)


def check_resumable(run_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse (RunError) a run directory whose checkpoint belongs to another configuration, before anything in
    it is touched."""
    path = run_dir / ckpt.CHECKPOINT_NAME
    if path.exists():
        ckpt.check_fingerprint(path, ckpt.load_checkpoint(path)["config"], fingerprint)


def run_training(spec: RunSpec, run_dir: Path, parent_checkpoint: Path | None = None) -> Trainer:
    """Train (or resume, or skip if finished) the run in run_dir; records config, status and training metrics.

    Holds the run directory's lock (iwae_cli.runs.lock) throughout: a second process on the same directory is
    refused (RunError naming the owner) before it writes anything of its own there."""
    check_resumable(run_dir, spec.fingerprint)
    run_dir.mkdir(parents=True, exist_ok=True)
    with hold_run_dir(run_dir):
        return _train_locked(spec, run_dir, parent_checkpoint)


def prepare_run_dir(spec: RunSpec, run_dir: Path) -> None:
    """Once this process owns run_dir: clear what a killed atomic write left, write config.yaml and the metrics'
    "run" summary."""
    # left by a process killed in the middle of an atomic write (only safe to remove once we own the directory)
    for stale in run_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    # a group's checkpoint that a kill interrupted; for a run resumed alone its own checkpoint.pt will do
    (run_dir / ckpt.NEXT_CHECKPOINT_NAME).unlink(missing_ok=True)
    atomic_write_text(run_dir / CONFIG_NAME, spec.config_yaml)
    record_metrics(run_dir, {"run": spec.summary})


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
            }
        },
    )
    write_status(trainer.run_dir, "done")


def _train_locked(spec: RunSpec, run_dir: Path, parent_checkpoint: Path | None) -> Trainer:
    """run_training's work, once this process owns run_dir."""
    prepare_run_dir(spec, run_dir)
    try:
        with RunTracker(spec.tracking, run_dir) as tracker:  # closed with the training; finish_run reopens it
            trainer = Trainer(spec, run_dir, parent_checkpoint, tracker=tracker)
            if trainer.finished:
                log.info("%s has finished its schedule; not training again", run_dir)
                write_status(run_dir, "done")  # (it may have been stopped after its last step)
                return trainer
            write_status(run_dir, "running")
            trainer.fit()
    except Interrupted as e:
        write_status(run_dir, "interrupted", str(e))
        raise
    except Exception as e:
        write_status(run_dir, "failed", first_line(e))
        raise
    record_trained(trainer)
    return trainer
