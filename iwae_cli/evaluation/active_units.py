"""A run's active units (Section 5.2), recorded in its metrics.json with every unit's A_u, and the histogram of
log A_u (active_units.png)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.activity import (
    AU_ENTRIES,
    activity_entry,
    activity_statistics,
    count_active,
    expected_activity_statistics,
)
from iwae_cli.core.model import IWAEModel
from iwae_cli.core.noise import binarize
from iwae_cli.data.loading import load_split
from iwae_cli.evaluation.spec import ActivitySpec, DataSource
from iwae_cli.runs.figures import plt, save_figure
from iwae_cli.runs.records import record_metrics


def record_active_units(
    run_dir: Path, model: IWAEModel, data: DataSource, spec: ActivitySpec, which: tuple[str, ...] = AU_ENTRIES
) -> tuple[dict[str, dict], dict[str, Any]]:
    """A_u per layer on binarised training images, recorded with counts under the threshold rule; returns the
    entries and the updated metrics.

    `which` names the estimates: active_units (the authors' code, one sample of each layer below; plotted to
    active_units.png) and active_units_expected (the paper's E_q over posterior_samples). Each starts from a
    generator seeded with spec.seed, so both see the same binarised images and either can be computed alone.
    """
    x = load_split(data.name, data.data_dir, data.download, "train", spec.examples)
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
        entries[name] = {**activity_entry(stats, spec.threshold, spec.inclusive, len(x), samples), "seed": spec.seed}
        if samples is None:
            plot_activity_histogram(stats, spec.threshold, run_dir / "active_units.png", spec.inclusive)
    return entries, record_metrics(run_dir, entries)


def plot_activity_histogram(
    stats: list[torch.Tensor], threshold: float, path: Path, inclusive: bool = False
) -> None:
    """A histogram of log A_u per layer, with the activity threshold marked (written atomically)."""
    fig, axes = plt.subplots(1, len(stats), figsize=(4.5 * len(stats), 3.2), squeeze=False)
    counts = count_active(stats, threshold, inclusive)
    for layer, (ax, a) in enumerate(zip(axes[0], stats, strict=True), start=1):
        ax.hist(torch.log(a.clamp_min(1e-12)).numpy(), bins=30, color="tab:blue")
        ax.axvline(math.log(threshold), color="tab:red", linestyle="--", label=f"log {threshold}")
        ax.set_title(f"layer {layer}: {counts[layer - 1]} of {len(a)} units active")
        ax.set_xlabel("log A_u")
        ax.legend()
    save_figure(fig, path)
