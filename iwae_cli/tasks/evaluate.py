"""`iwae eval-nll` and `iwae active-units`: a trained run (the one `run=` names, else the latest) evaluated, the
result recorded in its metrics.json with the checkpoint and environment it comes from, and given to the trackers
`logger` names. A run that another process trains is refused; one that has not finished only with
unfinished=true."""

from __future__ import annotations

from omegaconf import DictConfig

from iwae_cli.core.activity import AU_ENTRIES, recorded_matches
from iwae_cli.data.loading import load_split
from iwae_cli.evaluation.active_units import record_active_units
from iwae_cli.evaluation.nll import record_nll
from iwae_cli.evaluation.spec import DataSource, NLLSpec
from iwae_cli.specs.checks import flag
from iwae_cli.specs.evaluation import (
    activity_spec,
    data_source,
    nll_spec,
    refuse_split_without_images,
    run_holdout,
)
from iwae_cli.specs.saved_run import Run, load_named_run
from iwae_cli.specs.tracking import tracking_spec
from iwae_cli.tasks.finish import track_results
from iwae_cli.tasks.job import user_facing


@user_facing
def eval_nll_task(cfg: DictConfig) -> dict:
    """Estimate the NLL of a trained run (default: the latest) and record it in its metrics.json with the
    checkpoint and environment it comes from (core/provenance.py).

    prune_inactive=true: the NLL of the model with its inactive units removed (prune.py), using the run's
    recorded active_units (computed and recorded first if missing or from another checkpoint), recorded as
    `<split>_nll_pruned`.
    """
    spec = nll_spec(cfg, cfg.k, cfg.split, cfg.examples)
    tracking_spec(cfg)  # the logger checked (one line) before the run is read
    prune = flag(cfg.get("prune_inactive", False), "prune_inactive")
    activity = activity_spec(cfg, cfg.active_units) if prune else None
    run = load_named_run(cfg, lambda run: nll_work(spec, run, cfg, prune), lambda run: split_check(spec, run))
    data, made = run_data(run, cfg), run.made_from()
    active = None
    if activity is not None:
        active = run.metrics.get("active_units")
        if not recorded_matches(active, {"checkpoint": made["checkpoint"]}):
            entries, _ = record_active_units(run.path, run.model, data, activity, made, AU_ENTRIES[:1])
            active = entries["active_units"]
    estimate, _ = record_nll(run.path, run.model, data, spec, made, active)
    pruned = f" with inactive units pruned ({active['label']} kept, {active['rule']})" if active else ""
    print(
        f"{run.path}: {spec.split} NLL{pruned} = {estimate.nll:.2f} ± {estimate.standard_error:.2f} nats "
        f"(k={estimate.k}, n={estimate.n}), {checkpoint_text(made)}"
    )
    track_results(cfg, run)
    return estimate.as_dict()


@user_facing
def active_units_task(cfg: DictConfig) -> list[int]:
    """Count active units per layer of a trained run and record them with every unit's A_u: the authors'
    one-sample estimate (active_units) and the paper's expectation over posterior_samples (active_units_expected),
    with the checkpoint and environment they come from."""
    spec = activity_spec(cfg, cfg)
    tracking_spec(cfg)  # the logger checked (one line) before the run is read
    run = load_named_run(cfg, lambda _: f"its active units on {spec.examples:,} training images")
    made = run.made_from()
    entries, _ = record_active_units(run.path, run.model, run_data(run, cfg), spec, made)
    code, paper = entries["active_units"], entries["active_units_expected"]
    print(
        f"{run.path}: active units {code['label']} ({code['rule']}; histogram in active_units.png); "
        f"with E_q over {paper['posterior_samples']} samples: {paper['label']}; {checkpoint_text(made)}"
    )
    track_results(cfg, run)
    return code["counts"]


def run_data(run: Run, cfg: DictConfig) -> DataSource:
    """The run's images, split as it was trained (its protocol.holdout)."""
    dataset = run.config.dataset.name
    return data_source(dataset, cfg, run_holdout(run.config, dataset))


def split_check(spec: NLLSpec, run: Run) -> None:
    """split=valid only for a run that held validation images out of training."""
    refuse_split_without_images(spec.split, run_holdout(run.config, run.config.dataset.name), str(run.path))


def checkpoint_text(made: dict) -> str:
    """Which model a result printed now belongs to: 'model after 10 passes', marked where training is not
    finished."""
    checkpoint = made["checkpoint"]
    passes = "?" if checkpoint["passes"] is None else checkpoint["passes"]
    unfinished = "" if checkpoint["finished"] else " (unfinished run: not the finished model's number)"
    return f"model after {passes} passes{unfinished}"


def nll_work(spec: NLLSpec, run: Run, cfg: DictConfig, prune: bool) -> str:
    """What eval-nll is about to estimate on `run`: the split, k and the number of images (read from the data,
    as `examples=null` means the whole split)."""
    source = run_data(run, cfg)
    n = len(load_split(source.name, source.data_dir, source.download, spec.split, spec.examples, source.holdout))
    pruned = " with its inactive units pruned" if prune else ""
    return f"its {spec.split} NLL{pruned} with k={spec.k} on {n:,} {spec.split} images"
