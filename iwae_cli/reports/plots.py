"""Figures as PNG, each written atomically: a run's learning curve and samples, and the tables' figures (our NLL
against the paper's, NLL against training passes, every run's learning curves and samples).

Each figure is read without its command line at hand: its title says what was run (the run's configuration, or
the tables' schedule, seeds and test images), its axes carry units, passes and counts sit on whole-number
ticks, and no two labels overlap (tests/reports/test_figures.py draws each one and checks)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.axis import Axis
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from iwae_cli.reports.figures import plt, save_figure
from iwae_cli.reports.projection import PAPER_PASSES

PASSES = "passes over the training set"
OBJECTIVE_ORDER = {"vae": 0, "iwae": 1}  # the paper's order; other objectives after them


def passes_axis(axis: Axis, most: float) -> None:
    """Passes are whole numbers: plain integer ticks, on a log scale past 30 passes (the paper's 3^i stages)."""
    if most > 30:
        axis.axes.set_xscale("log")
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(integer=True))


def known(value: Any) -> bool:
    """Whether a table value is there (a missing one is None, or NaN once pandas has held it)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def cell_order(row: dict[str, Any]) -> tuple:
    """A table cell's place: dataset, depth, VAE before IWAE (the paper's order), k."""
    return row["dataset"], row["layers"], OBJECTIVE_ORDER.get(row["objective"], 2), row["objective"], row["k"]


def run_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's configuration as its metrics.json records it (dataset, layers, objective, k, schedule, seed)."""
    try:
        return json.loads((run_dir / "metrics.json").read_text())["run"]
    except (OSError, ValueError, KeyError):
        return None


def model_label(run: dict[str, Any]) -> str:
    """'mnist L1 IWAE k=50'."""
    return f"{run['dataset']} L{run['layers']} {str(run['objective']).upper()} k={run['k']}"


def run_caption(run_dir: Path) -> str:
    """'mnist L1 IWAE k=50, schedule smoke, seed 0'; the directory's name where metrics.json cannot say."""
    run = run_config(run_dir)
    if run is None:
        return run_dir.name
    return f"{model_label(run)}, schedule {run.get('schedule', '?')}, seed {run.get('seed', '?')}"


def runs_caption(schedules: Iterable[Any], seeds: Iterable[Any], images: Iterable[Any] = ()) -> str:
    """'schedule smoke, seeds 0,1,2, 100 test images': what a table's runs share, each value found listed once
    (a value may itself list several: a table row's seeds are "0,1,2")."""

    def found(values: Iterable[Any]) -> list[str]:
        parts = {part.strip() for v in values if known(v) for part in str(v).split(",")}
        return sorted(parts, key=lambda part: (len(part), part)) or ["?"]

    seed_list = found(seeds)
    caption = f"schedule {'/'.join(found(schedules))}, seed{'s' if len(seed_list) > 1 else ''} {','.join(seed_list)}"
    counts = sorted({int(float(n)) for n in images if known(n)})
    if counts:
        caption += f", {'/'.join(f'{n:,}' for n in counts)} test images"
    return caption


def plot_learning_curve(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Training and validation bound per pass over the training set, titled by the run's configuration and
    ``title`` (its directory's name)."""
    if not history:
        return None
    passes = [row["passes_done"] for row in history]
    fig, ax = plt.subplots(figsize=(5, 3.4), layout="constrained")
    ax.plot(passes, [row["train_bound"] for row in history], marker="o", label="train bound")
    valid = [row["valid_bound"] for row in history]
    if any(math.isfinite(v) for v in valid):  # only where the protocol holds images out
        ax.plot(passes, valid, marker="s", label="validation bound")
    ax.set_xlabel(PASSES)
    ax.set_ylabel("bound on log p(x) (nats)")
    passes_axis(ax.xaxis, max(passes))
    caption = run_caption(path.parent)
    ax.set_title(title if caption == title else f"{caption}\n{title}", fontsize=10)
    ax.legend()
    return save_figure(fig, path)


def image_grid(images: torch.Tensor, rows: int, image_shape: tuple[int, int]) -> torch.Tensor:
    """[rows*cols, height*width] images tiled into one [rows*height, cols*width] array."""
    cols, (height, width) = len(images) // rows, image_shape
    grid = images[: rows * cols].reshape(rows, cols, height, width).permute(0, 2, 1, 3)
    return grid.reshape(rows * height, cols * width)


def plot_samples(
    model, path: Path, seed: int, n: int = 100, image_shape: tuple[int, int] | None = None
) -> Path:
    """100 samples from the model (decoder means), as a 10 x 10 grid of images of the dataset's
    ``image_shape`` (DatasetSpec.image_shape; None: square, as every registered dataset's is). No title: the
    tables tile these images under their own (plot_sample_grids)."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    images = model.sample(n, generator).cpu()
    side = math.isqrt(model.arch.x_dim)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image_grid(images, 10, image_shape or (side, side)).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    return save_figure(fig, path)


def plot_nll_vs_paper(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Our test NLL (with its standard error) beside the paper's, one row per table cell: every cell has a
    line of its own, so no label lands on another however close the numbers are."""
    points = sorted((r for r in rows if known(r.get("nll")) and known(r.get("paper_nll"))), key=cell_order)
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 1.6 + 0.3 * len(points)), layout="constrained")
    y = list(range(len(points)))
    ours, paper = [r["nll"] for r in points], [r["paper_nll"] for r in points]
    ax.hlines(y, paper, ours, color="lightgray", zorder=0)
    errors = [r["nll_se"] if known(r.get("nll_se")) else 0.0 for r in points]
    ax.errorbar(ours, y, xerr=errors, fmt="o", capsize=3, label="ours (± standard error)")
    ax.plot(paper, y, "*", color="black", markersize=9, label="paper")
    several = len({r["dataset"] for r in points}) > 1
    labels = [model_label(r) if several else model_label(r).split(" ", 1)[1] for r in points]
    ax.set_yticks(y, labels)
    ax.set_ylabel(f"model: {'dataset, ' if several else ''}stochastic layers, objective, k")
    ax.invert_yaxis()  # the table's order, top to bottom
    ax.set_xlabel("test NLL (nats; lower is better)")
    caption = runs_caption(
        (r.get("schedule") for r in points),
        (r.get("seeds") for r in points),
        (r.get("eval_n") for r in points),
    )
    dataset = "" if several else f"{points[0]['dataset']} "
    ax.set_title(f"{dataset}test NLL: ours and the paper's\n{caption}", fontsize=10)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return save_figure(fig, path)


def plot_nll_vs_passes(
    points: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], path: Path
) -> Path | None:
    """Test NLL against training passes (log scale), one line per Table 1 cell over the schedules found
    (`points`: dataset, layers, objective, k, passes, nll, eval_n), ending at the paper's NLL at 3,280 passes
    (`rows`: the table's rows with paper_nll; the paper's test set is MNIST's 10,000 images). One panel per
    dataset and depth; each tick says how many test images the NLLs at that many passes were estimated on."""
    if not points:
        return None
    panels = sorted({(p["dataset"], p["layers"]) for p in points})
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels) + 1.4, 4.2), squeeze=False, layout="constrained"
    )
    colours = {k: f"C{i}" for i, k in enumerate(sorted({p["k"] for p in points}))}
    # each schedule's passes, labelled with the test images its NLLs were estimated on (profiles differ)
    images: dict[int, set] = {PAPER_PASSES: set()}
    for p in points:
        images.setdefault(p["passes"], set()).add(p.get("eval_n"))
    ticks = sorted(images)
    labels = [f"{t:,}" + "".join(f"\nn={int(n):,}" for n in sorted(images[t]) if known(n)) for t in ticks]
    legend: dict[str, Any] = {}
    for ax, (dataset, layers) in zip(axes[0], panels, strict=True):
        cells = sorted(
            {(p["objective"], p["k"]) for p in points if (p["dataset"], p["layers"]) == (dataset, layers)},
            key=lambda cell: (OBJECTIVE_ORDER.get(cell[0], 2), cell),
        )
        for objective, k in cells:
            cell = (dataset, layers, objective, k)
            ours = sorted(
                (p["passes"], p["nll"])
                for p in points
                if (p["dataset"], p["layers"], p["objective"], p["k"]) == cell
            )
            iwae = objective == "iwae"
            style = {"color": colours[k], "fillstyle": "full" if iwae else "none"}
            (line,) = ax.plot(
                *zip(*ours, strict=True),
                marker="o" if iwae else "s",
                linestyle="-" if iwae else "--",
                **style,
            )
            legend.setdefault(f"{objective.upper()} k={k}", line)
            paper = [
                r["paper_nll"]
                for r in rows
                if (r["dataset"], r["layers"], r["objective"], r["k"]) == cell and known(r.get("paper_nll"))
            ]
            if paper:  # dotted: what the paper's full schedule adds beyond ours
                ax.plot(
                    [ours[-1][0], PAPER_PASSES],
                    [ours[-1][1], paper[0]],
                    marker="*",
                    markevery=[1],
                    linestyle=":" if iwae else (0, (1, 4)),
                    **style,
                )
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels, fontsize=8)  # the schedules' 2, 10, 40 passes sit close on a log axis
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{dataset}, {layers} stochastic layer{'s' if layers > 1 else ''}", fontsize=10)
        ax.set_xlabel(f"{PASSES} (n: test images of the NLL)")
        ax.set_ylabel("test NLL (nats)")
    caption = runs_caption((r.get("schedule") for r in rows), (r.get("seeds") for r in rows))
    fig.suptitle(
        f"Test NLL against training: ours, then dotted to the paper's at {PAPER_PASSES:,} passes (*)\n"
        f"{caption}",
        fontsize=10,
    )
    fig.legend(legend.values(), legend.keys(), loc="outside right upper", fontsize=8)
    return save_figure(fig, path)


def plot_learning_curves(run_dirs: Sequence[Path], path: Path) -> Path | None:
    """Validation (where held out) and training bound per pass for every run, one panel per dataset and depth."""
    import pandas as pd

    curves = []
    for run_dir in run_dirs:
        run = run_config(run_dir)
        if run is not None and (run_dir / "train_log.csv").exists():
            curves.append((run, pd.read_csv(run_dir / "train_log.csv")))
    if not curves:
        return None
    panel_of = {id(run): " ".join(model_label(run).split()[:2]) for run, _ in curves}
    panels = sorted(set(panel_of.values()))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.4 * len(panels), 3.8), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        shown = sorted((c for c in curves if panel_of[id(c[0])] == panel), key=lambda c: cell_order(c[0]))
        # a validation bound exists only where the protocol holds images out (protocol=code)
        validated = any(df.valid_bound.notna().any() for _, df in shown)
        for run, df in shown:
            first = df.valid_bound if validated else df.train_bound
            (line,) = ax.plot(
                df.passes_done, first, marker="o", markersize=3, label=" ".join(model_label(run).split()[2:])
            )
            if validated:
                ax.plot(df.passes_done, df.train_bound, linestyle=":", color=line.get_color())
        passes_axis(ax.xaxis, max(df.passes_done.max() for _, df in shown))
        ax.set_title(
            f"{panel}: validation (solid), training (dotted)" if validated else f"{panel}: training bound",
            fontsize=10,
        )
        ax.set_xlabel(PASSES)
        ax.set_ylabel("bound on log p(x) (nats)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    caption = runs_caption((run.get("schedule") for run, _ in curves), (run.get("seed") for run, _ in curves))
    fig.suptitle(f"Learning curves of {len(curves)} runs: {caption}", fontsize=10)
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
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.6 * cols, 2.8 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    runs = [run_config(run_dir) for run_dir, _ in images]
    for ax, (run_dir, png), run in zip(axes.flat, images, runs, strict=False):
        ax.imshow(plt.imread(png))
        ax.set_title(model_label(run) if run else run_dir.name, fontsize=8)
    found = [run for run in runs if run]
    caption = runs_caption((run.get("schedule") for run in found), (run.get("seed") for run in found))
    fig.suptitle(f"100 samples from each model (decoder means): {caption}", fontsize=10)
    return save_figure(fig, path)
