"""The Hydra task functions behind the experiment subcommands: one function per command.

They are module-level (launchers pickle them) and each takes the composed config. `cli.py` wraps them with
`hydra.main`; tests may call them with a config from Hydra's Compose API.
"""

from __future__ import annotations

import functools
import logging
import shlex
import shutil
import sys
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write
from .checks import number, whole_number
from .datasets import binarize, load_dataset
from .errors import ConfigError, IwaeError, RunError
from .evaluate import (
    NLLEstimate,
    activity_statistics,
    count_active,
    estimate_nll,
    plot_activity_histogram,
    units_label,
)
from .runs import CONFIG_NAME, Run, load_run, record_metrics, resolve_run_dir, run_state
from .runtime import configure_torch, progress_setting, resolve_device
from .train import run_training, validate_config

log = logging.getLogger(__name__)


class UserError(CompactHydraException):
    """An expected error inside a sweep job: Hydra marks the job failed and lets the other jobs finish."""


def user_facing(task):
    """Expected errors (IwaeError) and Ctrl-C become one `error: ...` line and a non-zero exit, no traceback.

    In a single run we print and exit here; in a multirun the job fails (UserError) so the sweep goes on.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig):
        try:
            return task(cfg)
        except (IwaeError, KeyboardInterrupt) as e:
            message = f"error: {e}" if isinstance(e, IwaeError) else "error: interrupted"
            code = e.exit_code if isinstance(e, IwaeError) else 130
            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise UserError(message) from None
            print(message, file=sys.stderr)
            sys.exit(code)

    return wrapper


def resume_command(command: str) -> str:
    """The command line that resumes this job: the same subcommand and overrides."""
    overrides = HydraConfig.get().overrides.task
    return " ".join(["iwae", command, *map(shlex.quote, overrides)])


def output_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


# ---------------------------------------------------------------------------------------------- evaluation


def split_tensor(dataset: str, split: str, cfg: DictConfig, examples: int | None) -> torch.Tensor:
    """Intensities of one split (optionally its first N examples)."""
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"split={split} does not exist; use split=test, split=valid or split=train")
    examples = whole_number(examples, "examples", allow_null=True)
    data = getattr(load_dataset(dataset, cfg.get("data_dir"), cfg.get("download", "ask")), split)
    return data if examples is None else data[:examples]


def record_nll(run: Run, cfg: DictConfig, eval_cfg: DictConfig) -> NLLEstimate:
    """Estimate -L_k on a split, save the per-example values (for paired comparisons) and record metrics.json."""
    k, split = whole_number(eval_cfg.k, "k"), eval_cfg.split
    for key in ("batch_size", "chunk"):
        whole_number(eval_cfg[key], f"eval.{key}")
    whole_number(eval_cfg.seed, "eval.seed", minimum=0)
    device = next(run.model.parameters()).device
    x = split_tensor(run.config.dataset.name, split, cfg, eval_cfg.examples).to(device)
    estimate, per_example = estimate_nll(
        run.model,
        x,
        k,
        int(eval_cfg.seed),
        int(eval_cfg.batch_size),
        int(eval_cfg.chunk),
        progress_setting(cfg),
    )
    payload = {"log_likelihoods": per_example, "k": k, "seed": int(eval_cfg.seed)}
    atomic_write(run.path / f"log_likelihoods_{split}.pt", lambda f: torch.save(payload, f))
    record_metrics(run.path, {f"{split}_nll": {**estimate.as_dict(), "seed": int(eval_cfg.seed)}})
    return estimate


def record_active_units(run: Run, cfg: DictConfig, au_cfg: DictConfig, seed: int) -> list[int]:
    """Compute A_u per layer on binarised training images, record counts and every A_u, and plot log A_u."""
    device = next(run.model.parameters()).device
    x = split_tensor(run.config.dataset.name, "train", cfg, int(au_cfg.examples)).to(device)
    generator = torch.Generator(device).manual_seed(seed)
    stats = activity_statistics(run.model, binarize(x, generator), generator)
    threshold = number(au_cfg.threshold, "threshold")
    counts = count_active(stats, threshold)
    record_metrics(
        run.path,
        {
            "active_units": {
                "counts": counts,
                "label": units_label(counts),
                "threshold": threshold,
                "examples": len(x),
                "A_u": [a.tolist() for a in stats],
            }
        },
    )
    plot_activity_histogram(stats, threshold, run.path / "active_units.png")
    return counts


def load_named_run(cfg: DictConfig) -> Run:
    """The run named by the command's `run=` (or the latest), on the command's device."""
    configure_torch(cfg.get("threads"))
    return load_run(resolve_run_dir(cfg.get("run"), cfg.output_root), resolve_device(cfg.device))


def _evaluate_after_training(run_dir: Path, cfg: DictConfig) -> None:
    """The table commands' cell: test NLL and active units, skipped where metrics.json already has them."""
    run = load_run(run_dir, resolve_device(cfg.device))
    recorded = run.metrics.get(f"{cfg.eval.split}_nll", {})
    n_expected = cfg.eval.examples
    if not (
        recorded.get("k") == cfg.eval.k
        and recorded.get("seed") == cfg.eval.seed
        and (n_expected is None or recorded.get("n") == n_expected)
    ):
        estimate = record_nll(run, cfg, cfg.eval)
        log.info(
            "%s NLL %.2f +- %.2f (k=%d, n=%d)",
            cfg.eval.split,
            estimate.nll,
            estimate.standard_error,
            estimate.k,
            estimate.n,
        )
    if "active_units" not in run.metrics:
        counts = record_active_units(run, cfg, cfg.active_units, int(cfg.eval.seed))
        log.info("active units %s", units_label(counts))


# ---------------------------------------------------------------------------------------------- commands


@user_facing
def train_task(cfg: DictConfig) -> str:
    """Train one configuration in its run directory (resuming it); optionally evaluate it afterwards."""
    run_dir = output_dir()
    try:
        validate_config(cfg)
    except ConfigError:
        _remove_if_only_hydra_files(run_dir)
        raise
    trainer = run_training(cfg, run_dir, resume_command("train"))
    _finish(run_dir, trainer, cfg)
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
    run_dir = parent_dir / f"switch-{cfg.model.name}-k{cfg.k}"
    try:
        run_dir.mkdir(exist_ok=True)
        handler = logging.FileHandler(run_dir / "switch_objective.log")
    except OSError as e:
        raise RunError(
            f"cannot create the run directory {run_dir} ({e.strerror or e}); move away what is there"
        ) from None
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        trainer = run_training(
            child, run_dir, resume_command("switch-objective"), parent_dir / "checkpoint.pt"
        )
        _finish(run_dir, trainer, child)
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


def _finish(run_dir: Path, trainer, cfg: DictConfig) -> None:
    from .plots import plot_learning_curve, plot_samples

    plot_learning_curve(trainer.position.history, run_dir / "learning_curve.png", f"{run_dir.name}")
    plot_samples(trainer.model, run_dir / "samples.png", seed=int(cfg.seed))
    if cfg.get("evaluate"):
        _evaluate_after_training(run_dir, cfg)
    log.info("run directory: %s", run_dir)


@user_facing
def eval_nll_task(cfg: DictConfig) -> dict:
    """Estimate the NLL of a trained run (default: the latest) and record it in its metrics.json."""
    run = load_named_run(cfg)
    eval_cfg = OmegaConf.create(
        {
            "k": cfg.k,
            "split": cfg.split,
            "examples": cfg.examples,
            "batch_size": cfg.eval.batch_size,
            "chunk": cfg.eval.chunk,
            "seed": cfg.eval.seed,
        }
    )
    estimate = record_nll(run, cfg, eval_cfg)
    print(
        f"{run.path}: {cfg.split} NLL = {estimate.nll:.2f} ± {estimate.standard_error:.2f} nats "
        f"(k={estimate.k}, n={estimate.n})"
    )
    return estimate.as_dict()


@user_facing
def active_units_task(cfg: DictConfig) -> list[int]:
    """Count active units per layer of a trained run and record them with every unit's A_u."""
    run = load_named_run(cfg)
    au_cfg = OmegaConf.create({"examples": cfg.examples, "threshold": cfg.threshold})
    counts = record_active_units(run, cfg, au_cfg, int(cfg.eval.seed))
    print(
        f"{run.path}: active units {units_label(counts)} (A_u > {cfg.threshold}; histogram in active_units.png)"
    )
    return counts
