"""A run's test NLL (Section 5.1): -L_k with k = 5000 on a split, recorded in its metrics.json with the
per-example values beside it (for paired comparisons between models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.activity import entry_masks
from iwae_cli.core.atomic import atomic_write
from iwae_cli.core.estimators import NLLEstimate, estimate_nll
from iwae_cli.core.model import IWAEModel
from iwae_cli.core.prune import prune_inactive
from iwae_cli.data.loading import load_split
from iwae_cli.evaluation.spec import DataSource, NLLSpec
from iwae_cli.runs.records import record_metrics


def record_nll(
    run_dir: Path, model: IWAEModel, data: DataSource, spec: NLLSpec, made: dict[str, Any], active: dict | None = None
) -> tuple[NLLEstimate, dict[str, Any]]:
    """Estimate -L_k on the split, save the per-example values and record `<split>_nll` in metrics.json with
    the split and `made` (the checkpoint and environment it comes from, core/provenance.py); returns the
    estimate and the updated metrics.

    With `active` (a recorded active_units entry) the model is first pruned to its active units (prune.py, as
    the authors' code) and the result is recorded as `<split>_nll_pruned`, with the units kept.
    """
    suffix, extra = "", {}
    if active is not None:
        model, suffix = prune_inactive(model, entry_masks(active)), "_pruned"
        extra = {key: active.get(key, False) for key in ("counts", "label", "threshold", "inclusive")}
    x = load_split(data.name, data.data_dir, data.download, spec.split, spec.examples, holdout=data.holdout)
    x = x.to(next(model.parameters()).device)
    estimate, per_example = estimate_nll(model, x, spec.k, spec.seed, spec.batch_size, spec.chunk, spec.progress)
    payload = {"log_likelihoods": per_example, "k": spec.k, "seed": spec.seed, **made}
    atomic_write(run_dir / f"log_likelihoods_{spec.split}{suffix}.pt", lambda f: torch.save(payload, f))
    entry = {**estimate.as_dict(), "split": spec.split, "seed": spec.seed, **extra, **made}
    return estimate, record_metrics(run_dir, {f"{spec.split}_nll{suffix}": entry})
