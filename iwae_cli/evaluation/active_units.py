"""A run's active units (Section 5.2), recorded in its metrics.json with every unit's A_u, and the histogram of
log A_u (active_units.png) drawn by the spec's `histogram` (the reports draw figures, a layer above this one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.activity import (
    AU_ENTRIES,
    activity_entry,
    activity_statistics,
    expected_activity_statistics,
)
from iwae_cli.core.model import IWAEModel
from iwae_cli.core.noise import binarize
from iwae_cli.data.loading import load_split
from iwae_cli.evaluation.spec import ActivitySpec, DataSource
from iwae_cli.runs.records import record_metrics


def record_active_units(
    run_dir: Path,
    model: IWAEModel,
    data: DataSource,
    spec: ActivitySpec,
    made: dict[str, Any],
    which: tuple[str, ...] = AU_ENTRIES,
) -> tuple[dict[str, dict], dict[str, Any]]:
    """A_u per layer on binarised training images, recorded with counts under the threshold rule and `made`
    (the checkpoint and environment they come from, core/provenance.py); returns the entries and the updated
    metrics.

    `which` names the estimates: active_units (the authors' code, one sample of each layer below; drawn to
    active_units.png by spec.histogram, where the command gives one) and active_units_expected (the paper's E_q
    over posterior_samples). Each starts from a generator seeded with spec.seed, so both see the same binarised
    images and either can be computed alone.
    """
    x = load_split(data.name, data.data_dir, data.download, "train", spec.examples, holdout=data.holdout)
    x = x.to(next(model.parameters()).device)
    entries = {}
    for name in which:
        generator = torch.Generator(x.device).manual_seed(spec.seed)
        x_binary = binarize(x, generator)
        samples = spec.posterior_samples if name == "active_units_expected" else None
        if samples is None:
            stats = activity_statistics(model, x_binary, generator)
        else:
            stats = expected_activity_statistics(model, x_binary, generator, samples)
        entries[name] = {**activity_entry(stats, spec.threshold, spec.inclusive, len(x), samples), "split": "train", "seed": spec.seed, **made}
        if samples is None and spec.histogram is not None:
            spec.histogram(stats, spec.threshold, run_dir / "active_units.png", spec.inclusive)
    return entries, record_metrics(run_dir, entries)
