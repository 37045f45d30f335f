"""What every training command does around a run's training: the record of a refused config, and a trained
run's figures, (with evaluate=true) its evaluation and its results in the trackers; and the results of the
evaluation commands in the trackers."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from iwae_cli.evaluation.finished_run import evaluate_finished_run
from iwae_cli.evaluation.spec import EvalSpec
from iwae_cli.reports.plots import plot_learning_curve, plot_samples
from iwae_cli.runs.atomic import atomic_write_text
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.runs.records import (
    CONFIG_NAME,
    METRICS_NAME,
    read_json,
    record_metrics,
    write_status,
)
from iwae_cli.specs.evaluation import eval_spec
from iwae_cli.specs.run import run_summary
from iwae_cli.specs.saved_run import Run, load_run
from iwae_cli.specs.tracking import tracking_spec
from iwae_cli.tracking.record import figures
from iwae_cli.tracking.tracker import RunTracker
from iwae_cli.training.trainer import Trainer

log = logging.getLogger(__name__)


def evaluation_of(cfg: DictConfig) -> EvalSpec | None:
    """The evaluation a training command runs after training (evaluate=true), checked before it trains."""
    return eval_spec(cfg, cfg.dataset.name) if cfg.get("evaluate") else None


def finish_run(trainer: Trainer, evaluation: EvalSpec | None) -> None:
    """A trained run's learning curve and samples, then its evaluation where asked; the trackers get what they
    lack of its epochs (all of them where a tracker was turned on after training), its results and figures."""
    run_dir = trainer.run_dir
    with trainer.tracker as tracker:  # reopened here (the training closed it)
        # first, so that an evaluation that fails marks the tracker runs failed
        tracker.log_epochs(trainer.position.history, trainer.examples_per_epoch)
        plot_learning_curve(trainer.position.history, run_dir / "learning_curve.png", f"{run_dir.name}")
        plot_samples(trainer.model, run_dir / "samples.png", seed=trainer.spec.model.seed)
        if evaluation is not None:
            run = load_run(run_dir, trainer.spec.settings.device)
            evaluate_finished_run(run_dir, run.model, run.metrics, evaluation)
        tracker.finish(read_json(run_dir / METRICS_NAME), figures(run_dir))
    log.info("run directory: %s", run_dir)


def track_results(cfg: DictConfig, run: Run) -> None:
    """An evaluation command's results (eval-nll, active-units) also in the trackers `logger` names: the run's
    results and figures, to the tracker runs its training used (or new ones, with its config)."""
    spec = tracking_spec(cfg, run.config)
    if spec.enabled:
        with RunTracker(spec, run.path) as tracker:
            tracker.finish(read_json(run.path / METRICS_NAME), figures(run.path))


def record_refusal(run_dir: Path, cfg: DictConfig, message: str) -> None:
    """A run directory that says its configuration was refused: config.yaml, the metrics' "run" summary and a
    failed status with the one-line reason. Left as it is when the directory already holds a run of its own."""
    if (run_dir / CONFIG_NAME).exists():
        return
    try:
        summary = run_summary(cfg)
    except (ValueError, TypeError, OmegaConfBaseException):  # too broken to name its cell: the error line says it
        return
    with hold_run_dir(run_dir):
        atomic_write_text(run_dir / CONFIG_NAME, OmegaConf.to_yaml(cfg))
        record_metrics(run_dir, {"run": summary})
        write_status(run_dir, "failed", message)
