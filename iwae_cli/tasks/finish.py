"""What the commands do around the run lifecycle (iwae_cli.pipeline.lifecycle) with their configs: the
evaluation a training command asks for, the record of a refused config, and the results of the evaluation
commands in the trackers."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from iwae_cli.evaluation.spec import EvalSpec
from iwae_cli.pipeline.lifecycle import record_refusal as record_refused_run
from iwae_cli.runs.records import METRICS_NAME, read_json
from iwae_cli.specs.checks import setting
from iwae_cli.specs.evaluation import eval_spec
from iwae_cli.specs.run import run_summary
from iwae_cli.specs.saved_run import Run
from iwae_cli.specs.tracking import tracking_spec
from iwae_cli.tracking.record import figures
from iwae_cli.tracking.tracker import RunTracker


def evaluation_of(cfg: DictConfig) -> EvalSpec | None:
    """The evaluation a training command runs after training (evaluate=true), checked before it trains."""
    return eval_spec(cfg, cfg.dataset.name) if setting(cfg, "evaluate", False) else None


def track_results(cfg: DictConfig, run: Run) -> None:
    """An evaluation command's results (eval-nll, active-units) also in the trackers `logger` names: the run's
    results and figures, to the tracker runs its training used (or new ones, with its config)."""
    spec = tracking_spec(cfg, run.config)
    if spec.enabled:
        with RunTracker(spec, run.path) as tracker:
            tracker.finish(read_json(run.path / METRICS_NAME), figures(run.path))


def record_refusal(run_dir: Path, cfg: DictConfig, message: str) -> None:
    """A sweep's cell whose config was refused: its directory says so (pipeline.lifecycle.record_refusal), for
    `iwae runs` and the tables. Nothing is recorded for a config too broken to name its cell."""
    try:
        summary = run_summary(cfg)
    except (ValueError, TypeError, OmegaConfBaseException):  # the error line says what is wrong
        return
    record_refused_run(run_dir, OmegaConf.to_yaml(cfg), summary, message)
