"""Figures as PNG, each written atomically: learning curves, model samples, and ours-vs-paper NLL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from iwae_cli.runs.figures import plt, save_figure


def plot_learning_curve(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Training and validation bound per pass over the training set."""
    if not history:
        return None
    passes = [row["passes_done"] for row in history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(passes, [row["train_bound"] for row in history], marker="o", label="train bound")
    valid = [row["valid_bound"] for row in history]
    if any(math.isfinite(v) for v in valid):  # only where the protocol holds images out
        ax.plot(passes, valid, marker="s", label="validation bound")
    ax.set_xlabel("passes over the training set")
    ax.set_ylabel("bound (nats)")
    if max(passes) > 30:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def image_grid(images: torch.Tensor, rows: int, image_shape: tuple[int, int]) -> torch.Tensor:
    """[rows*cols, height*width] images tiled into one [rows*height, cols*width] array."""
    cols, (height, width) = len(images) // rows, image_shape
    grid = images[: rows * cols].reshape(rows, cols, height, width).permute(0, 2, 1, 3)
    return grid.reshape(rows * height, cols * width)


def plot_samples(model, path: Path, seed: int, n: int = 100, image_shape: tuple[int, int] | None = None) -> Path:
    """100 samples from the model (decoder means), as a 10 x 10 grid of images of the dataset's
    ``image_shape`` (DatasetSpec.image_shape; None: square, as every registered dataset's is)."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    images = model.sample(n, generator).cpu()
    side = math.isqrt(model.arch.x_dim)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image_grid(images, 10, image_shape or (side, side)).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    return save_figure(fig, path)


def plot_nll_vs_paper(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Our NLL (with standard error) against the paper's, one point per table cell."""
    points = [r for r in rows if r.get("nll") is not None and r.get("paper_nll") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    for objective, marker in (("vae", "o"), ("iwae", "s")):
        sel = [r for r in points if r["objective"] == objective]
        if sel:
            ax.errorbar(
                [r["paper_nll"] for r in sel],
                [r["nll"] for r in sel],
                yerr=[r["nll_se"] for r in sel],
                fmt=marker,
                label=objective.upper(),
                capsize=3,
            )
    others = [r for r in points if r["objective"] not in ("vae", "iwae")]
    if others:
        ax.errorbar([r["paper_nll"] for r in others], [r["nll"] for r in others], fmt="^", label="other")
    lo = min(min(r["paper_nll"], r["nll"]) for r in points) - 1
    hi = max(max(r["paper_nll"], r["nll"]) for r in points) + 1
    ax.plot([lo, hi], [lo, hi], color="gray", linestyle="--", label="ours = paper")
    for r in points:
        ax.annotate(
            f"{r['dataset'][:1].upper()}{r['layers']} k{r['k']}", (r["paper_nll"], r["nll"]), fontsize=7
        )
    ax.set_xlabel("paper's test NLL (nats)")
    ax.set_ylabel("our test NLL (nats)")
    ax.legend()
    return save_figure(fig, path)


PAPER_PASSES = 3280  # the paper's schedule: 3^i passes for i = 0..7


def plot_nll_vs_passes(points: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Test NLL against training passes (log scale), one line per Table 1 cell over the schedules found
    (`points`: dataset, layers, objective, k, passes, nll, eval_n), ending at the paper's NLL at 3,280 passes
    (`rows`: the table's rows with paper_nll; the paper's test set is MNIST's 10,000 images). One panel per
    dataset and depth; each tick says how many test images the NLLs at that many passes were estimated on."""
    if not points:
        return None
    panels = sorted({(p["dataset"], p["layers"]) for p in points})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    colours = {k: f"C{i}" for i, k in enumerate(sorted({p["k"] for p in points}))}
    # each schedule's passes, labelled with the test images its NLLs were estimated on (profiles differ)
    images: dict[int, set] = {PAPER_PASSES: set()}
    for p in points:
        images.setdefault(p["passes"], set()).add(p.get("eval_n"))
    ticks = sorted(images)
    labels = [f"{t:,}" + "".join(f"\nn={n:,}" for n in sorted(images[t]) if n) for t in ticks]
    for ax, (dataset, layers) in zip(axes[0], panels, strict=True):
        cells = sorted({(p["objective"], p["k"]) for p in points if (p["dataset"], p["layers"]) == (dataset, layers)})
        for objective, k in cells:
            cell = (dataset, layers, objective, k)
            ours = sorted((p["passes"], p["nll"]) for p in points if (p["dataset"], p["layers"], p["objective"], p["k"]) == cell)
            iwae = objective == "iwae"
            style = {"color": colours[k], "fillstyle": "full" if iwae else "none"}
            ax.plot(*zip(*ours, strict=True), marker="o" if iwae else "s", linestyle="-" if iwae else "--",
                    label=f"{objective.upper()} k={k}", **style)
            paper = [r["paper_nll"] for r in rows
                     if (r["dataset"], r["layers"], r["objective"], r["k"]) == cell and r.get("paper_nll") is not None]
            if paper:  # dotted: what the paper's full schedule adds beyond ours
                ax.plot([ours[-1][0], PAPER_PASSES], [ours[-1][1], paper[0]], marker="*", markevery=[1],
                        linestyle=":" if iwae else (0, (1, 4)), **style)
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels)
        ax.set_title(f"{dataset} L{layers}: ours, and the paper's at {PAPER_PASSES:,} passes (*)")
        ax.set_xlabel("training passes (n: test images of the NLL)")
        ax.set_ylabel("test NLL (nats)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _label(run_dir: Path) -> str:
    """'mnist L1 iwae k=50' from a run's metrics.json."""
    import json

    try:
        run = json.loads((run_dir / "metrics.json").read_text())["run"]
        return f"{run['dataset']} L{run['layers']} {run['objective']} k={run['k']}"
    except (OSError, ValueError, KeyError):
        return run_dir.name


def plot_learning_curves(run_dirs: Sequence[Path], path: Path) -> Path | None:
    """Validation (where held out) and training bound per pass for every run, one panel per dataset and depth."""
    import pandas as pd

    curves = []
    for run_dir in run_dirs:
        log_path = run_dir / "train_log.csv"
        if log_path.exists():
            label = _label(run_dir)
            curves.append((" ".join(label.split()[:2]), " ".join(label.split()[2:]), pd.read_csv(log_path)))
    if not curves:
        return None
    panels = sorted({c[0] for c in curves})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        shown = [c for c in curves if c[0] == panel]
        # a validation bound exists only where the protocol holds images out (protocol=code)
        validated = any(df.valid_bound.notna().any() for _, _, df in shown)
        for _, name, df in shown:
            first = df.valid_bound if validated else df.train_bound
            (line,) = ax.plot(df.passes_done, first, marker="o", markersize=3, label=name)
            if validated:
                ax.plot(df.passes_done, df.train_bound, linestyle=":", color=line.get_color())
        ax.set_title(f"{panel}: validation (solid), training (dotted)" if validated else f"{panel}: training bound")
        ax.set_xlabel("passes")
        ax.set_ylabel("bound (nats)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_sample_grids(run_dirs: Sequence[Path], path: Path) -> Path | None:
    """Each run's samples.png (100 samples) side by side, titled by configuration."""
    images = [
        (run_dir, run_dir / "samples.png") for run_dir in run_dirs if (run_dir / "samples.png").exists()
    ]
    if not images:
        return None
    cols = min(6, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (run_dir, png) in zip(axes.flat, images, strict=False):
        ax.imshow(plt.imread(png))
        ax.set_title(_label(run_dir), fontsize=7)
    return save_figure(fig, path)
