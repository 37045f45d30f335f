"""The evaluation commands' figures, drawn from what the evaluation measured: the gradient SNR against k
(grad_snr.png, `iwae grad-snr`) and the histogram of log A_u (active_units.png, `iwae active-units` and every
evaluated run). The evaluation layer sits below the reports, so it does not draw: the histogram reaches it as
ActivitySpec.histogram (iwae_cli.specs.evaluation)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from matplotlib.axis import Axis
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, MaxNLocator, NullFormatter

from iwae_cli.core.activity import count_active
from iwae_cli.reports.figures import plt, save_figure
from iwae_cli.reports.plots import run_caption


def plain_log_labels(axis: Axis) -> None:
    """Label a log axis in plain numbers (0.6, not 6x10^-1) at the ticks matplotlib's LogFormatter would label:
    the minor ones too where the axis spans less than a decade, none of them where so many would crowd."""
    for set_formatter in (axis.set_major_formatter, axis.set_minor_formatter):
        chooser = LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5))
        chooser.set_axis(axis)
        set_formatter(
            FuncFormatter(lambda value, pos, chooser=chooser: f"{value:g}" if chooser(value, pos) else "")
        )


def plot_snr(df: pd.DataFrame, path: Path) -> None:
    """Mean gradient SNR against k (both log scales), one line per objective, encoder and decoder side by side;
    titled by the run (the directory `path` is in). k sits on its measured values, SNRs on plain numbers: a log
    axis spanning less than a decade would otherwise read 6x10^-1."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    ks = sorted(df.k.unique())
    for ax, part in zip(axes, ("encoder", "decoder"), strict=True):
        for objective, group in df[df.part == part].groupby("objective"):
            ax.plot(group.k, group.snr_mean, marker="o", label=str(objective).upper())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        plain_log_labels(ax.yaxis)
        ax.set_xlabel("k (importance samples)")
        ax.set_ylabel("mean SNR, |mean| / std (no unit)")
        ax.set_title(f"{part} gradient", fontsize=10)
        ax.legend()
    fig.suptitle(f"Gradient signal-to-noise ratio against k: {run_caption(path.parent)}", fontsize=10)
    save_figure(fig, path)


def plot_activity_histogram(
    stats: list[torch.Tensor], threshold: float, path: Path, inclusive: bool = False
) -> None:
    """A histogram of log A_u per layer, with the activity threshold marked (written atomically); titled by the
    run (the directory `path` is in)."""
    fig, axes = plt.subplots(
        1, len(stats), figsize=(4.5 * len(stats), 3.6), squeeze=False, layout="constrained"
    )
    counts = count_active(stats, threshold, inclusive)
    for layer, (ax, a) in enumerate(zip(axes[0], stats, strict=True), start=1):
        ax.hist(torch.log(a.clamp_min(1e-12)).numpy(), bins=30, color="tab:blue")
        ax.axvline(
            math.log(threshold), color="tab:red", linestyle="--", label=f"threshold A_u = {threshold:g}"
        )
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"layer {layer}: {counts[layer - 1]} of {len(a)} units active", fontsize=10)
        ax.set_xlabel("log A_u  (A_u: variance over images of E_q[u | x])")
        ax.set_ylabel("latent units")
        ax.legend(fontsize=8)
    fig.suptitle(f"Active units: {run_caption(path.parent)}", fontsize=10)
    save_figure(fig, path)
