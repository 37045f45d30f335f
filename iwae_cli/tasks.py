"""The Hydra task functions behind the experiment subcommands: one function per command.

They are module-level (launchers pickle them) and each takes the composed config. `cli.py` wraps them with
`hydra.main`; tests may call them with a config from Hydra's Compose API.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .atomic import atomic_write, atomic_write_text
from .checks import whole_number
from .datasets import binarize
from .errors import ConfigError, RunError
from .evaluate import (
    AU_ENTRIES,
    NLLEstimate,
    activity_entry,
    activity_settings,
    activity_statistics,
    activity_wanted,
    check_flag,
    entry_masks,
    estimate_nll,
    expected_activity_statistics,
    plot_activity_histogram,
    recorded_matches,
)
from .hydra_job import in_multirun, output_dir, resume_command, run_log_handler, user_facing
from .lock import hold_run_dir
from .prune import prune_inactive
from .run_lifecycle import run_training
from .run_spec import RunSpec
from .runs import (
    CONFIG_NAME,
    Run,
    load_run,
    record_metrics,
    resolve_run_dir,
    run_state,
    run_summary,
    write_status,
)
from .runtime import resolve_device
from .task_inputs import load_named_run, progress_setting, split_tensor

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- evaluation


def record_nll(run: Run, cfg: DictConfig, eval_cfg: DictConfig, active: dict | None = None) -> NLLEstimate:
    """Estimate -L_k on a split, save the per-example values (for paired comparisons) and record metrics.json.

    With `active` (a recorded active_units entry) the model is first pruned to its active units (prune.py, as
    the authors' code) and the result is recorded as `<split>_nll_pruned`, with the units kept.
    """
    k, split = whole_number(eval_cfg.k, "k"), eval_cfg.split
    for key in ("batch_size", "chunk"):
        whole_number(eval_cfg[key], f"eval.{key}")
    seed = whole_number(eval_cfg.seed, "eval.seed", minimum=0)
    model, suffix, extra = run.model, "", {}
    if active is not None:
        model, suffix = prune_inactive(run.model, entry_masks(active)), "_pruned"
        extra = {key: active.get(key, False) for key in ("counts", "label", "threshold", "inclusive")}
    x = split_tensor(run.config.dataset.name, split, cfg, eval_cfg.examples)
    x = x.to(next(model.parameters()).device)
    estimate, per_example = estimate_nll(
        model, x, k, seed, int(eval_cfg.batch_size), int(eval_cfg.chunk), progress_setting(cfg)
    )
    payload = {"log_likelihoods": per_example, "k": k, "seed": seed}
    atomic_write(run.path / f"log_likelihoods_{split}{suffix}.pt", lambda f: torch.save(payload, f))
    entry = {**estimate.as_dict(), "seed": seed, **extra}
    run.metrics = record_metrics(run.path, {f"{split}_nll{suffix}": entry})
    return estimate


def record_active_units(
    run: Run, cfg: DictConfig, au_cfg: DictConfig, seed: int, which: tuple[str, ...] = AU_ENTRIES
) -> dict[str, dict]:
    """A_u per layer on binarised training images (Section 5.2), recorded with counts under the threshold rule.

    `which` names the estimates: active_units (the authors' code, one sample of each layer below; plotted to
    active_units.png) and active_units_expected (the paper's E_q over posterior_samples). Each starts from a
    generator seeded with `seed`, so both see the same binarised images and either can be computed alone.
    """
    settings = activity_settings(au_cfg)
    x = split_tensor(run.config.dataset.name, "train", cfg, settings["examples"])
    x = x.to(next(run.model.parameters()).device)
    entries = {}
    for name in which:
        generator = torch.Generator(x.device).manual_seed(seed)
        x_binary = binarize(x, generator)
        samples = settings["posterior_samples"] if name == "active_units_expected" else None
        if samples is None:
            stats = activity_statistics(run.model, x_binary, generator)
        else:
            stats = expected_activity_statistics(run.model, x_binary, generator, samples)
        rule = (settings["threshold"], settings["inclusive"])
        entries[name] = {**activity_entry(stats, *rule, len(x), samples), "seed": seed}
        if samples is None:
            plot_activity_histogram(stats, rule[0], run.path / "active_units.png", inclusive=rule[1])
    run.metrics = record_metrics(run.path, entries)
    return entries


def _evaluate_after_training(run_dir: Path, cfg: DictConfig) -> None:
    """The table commands' cell: test NLL, both active-unit estimates and (with eval.prune_inactive) the pruned
    test NLL. Each is computed only where metrics.json lacks it or holds it for other settings, so re-running a
    table command on old runs fills in just the new metrics."""
    run = load_run(run_dir, resolve_device(cfg.device))
    split, seed = cfg.eval.split, int(cfg.eval.seed)
    wanted = {"k": cfg.eval.k, "seed": cfg.eval.seed, "n": cfg.eval.examples}
    if not recorded_matches(run.metrics.get(f"{split}_nll"), wanted):
        _log_nll(f"{split} NLL", record_nll(run, cfg, cfg.eval))
    settings = activity_settings(cfg.active_units)
    missing = tuple(
        n for n in AU_ENTRIES if not recorded_matches(run.metrics.get(n), activity_wanted(n, settings))
    )
    if missing:
        for name, entry in record_active_units(run, cfg, cfg.active_units, seed, missing).items():
            log.info("%s %s (%s)", name.replace("_", " "), entry["label"], entry["rule"])
    if not check_flag(cfg.eval.get("prune_inactive", False), "eval.prune_inactive"):
        return
    active = run.metrics["active_units"]
    pruned = {**wanted, **{key: active.get(key, False) for key in ("label", "threshold", "inclusive")}}
    if not recorded_matches(run.metrics.get(f"{split}_nll_pruned"), pruned):
        _log_nll(f"{split} NLL pruned to {active['label']}", record_nll(run, cfg, cfg.eval, active))


def _log_nll(what: str, estimate: NLLEstimate) -> None:
    log.info(
        "%s %.2f +- %.2f (k=%d, n=%d)", what, estimate.nll, estimate.standard_error, estimate.k, estimate.n
    )


# ---------------------------------------------------------------------------------------------- commands


@user_facing
def train_task(cfg: DictConfig) -> str:
    """Train one configuration in its run directory (resuming it); optionally evaluate it afterwards."""
    if cfg.get("group_members"):  # a job of `iwae train -m ... group=true`: its cells in lockstep
        from .group_task import train_group

        return train_group(cfg)
    run_dir = output_dir()
    try:
        spec = RunSpec.from_config(cfg)
    except ConfigError as e:
        if in_multirun():  # a sweep's cell: keep why it did not run, for `iwae runs` and the tables
            record_refusal(run_dir, cfg, str(e))
        else:
            _remove_if_only_hydra_files(run_dir)
        raise
    with hold_run_dir(run_dir):  # one live process per run directory, evaluation included
        trainer = run_training(spec, run_dir, resume_command("train"))
        finish_run(run_dir, trainer, cfg)
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
    spec = RunSpec.from_config(child)
    run_dir = parent_dir / f"switch-{cfg.model.name}-k{cfg.k}"
    handler = run_log_handler(run_dir / "switch_objective.log")
    try:
        with hold_run_dir(run_dir):
            trainer = run_training(
                spec, run_dir, resume_command("switch-objective"), parent_dir / "checkpoint.pt"
            )
            finish_run(run_dir, trainer, child)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return str(run_dir)


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


def _remove_if_only_hydra_files(run_dir: Path) -> None:
    """Hydra creates the run directory before the task can reject the config; don't leave that husk behind."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(run_dir)
        for parent in list(run_dir.parents)[:2]:  # the config-named parents, when now empty
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()


def finish_run(run_dir: Path, trainer, cfg: DictConfig) -> None:
    from .plots import plot_learning_curve, plot_samples

    plot_learning_curve(trainer.position.history, run_dir / "learning_curve.png", f"{run_dir.name}")
    plot_samples(trainer.model, run_dir / "samples.png", seed=int(cfg.seed))
    if cfg.get("evaluate"):
        _evaluate_after_training(run_dir, cfg)
    log.info("run directory: %s", run_dir)


@user_facing
def eval_nll_task(cfg: DictConfig) -> dict:
    """Estimate the NLL of a trained run (default: the latest) and record it in its metrics.json.

    prune_inactive=true: the NLL of the model with its inactive units removed (prune.py), using the run's
    recorded active_units (computed and recorded first if missing), recorded as `<split>_nll_pruned`.
    """
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
    active = None
    if check_flag(cfg.get("prune_inactive", False), "prune_inactive"):
        active = run.metrics.get("active_units")
        if active is None:
            active = record_active_units(run, cfg, cfg.active_units, int(cfg.eval.seed), AU_ENTRIES[:1])
            active = active["active_units"]
    estimate = record_nll(run, cfg, eval_cfg, active)
    pruned = f" with inactive units pruned ({active['label']} kept, {active['rule']})" if active else ""
    print(
        f"{run.path}: {cfg.split} NLL{pruned} = {estimate.nll:.2f} ± {estimate.standard_error:.2f} nats "
        f"(k={estimate.k}, n={estimate.n})"
    )
    return estimate.as_dict()


@user_facing
def active_units_task(cfg: DictConfig) -> list[int]:
    """Count active units per layer of a trained run and record them with every unit's A_u: the authors'
    one-sample estimate (active_units) and the paper's expectation over posterior_samples (active_units_expected)."""
    run = load_named_run(cfg)
    keys = ("examples", "threshold", "inclusive", "posterior_samples")
    au_cfg = OmegaConf.create({key: cfg[key] for key in keys})
    entries = record_active_units(run, cfg, au_cfg, int(cfg.eval.seed))
    code, paper = entries["active_units"], entries["active_units_expected"]
    print(
        f"{run.path}: active units {code['label']} ({code['rule']}; histogram in active_units.png); "
        f"with E_q over {paper['posterior_samples']} samples: {paper['label']}"
    )
    return code["counts"]
