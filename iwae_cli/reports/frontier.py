"""The time-to-quality frontier (`iwae frontier`): for each cell, each recipe's validation NLL against the training
seconds it took to get there, as a CSV and a figure (one panel per cell, one line per recipe, time on a log
axis). Validation numbers only: the images are held out of training, and the test set stays the tables'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from iwae_cli.core.atomic import atomic_write_text
from iwae_cli.reports.figures import plt, save_figure

COLUMNS = ("cell", "recipe", "passes", "train_seconds", "valid_nll", "valid_se", "k", "n", "run")


def frontier_table(points: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per scored snapshot (COLUMNS), by cell, recipe and passes."""
    df = pd.DataFrame(list(points), columns=list(COLUMNS))
    return df.sort_values(["cell", "recipe", "passes"], kind="stable").reset_index(drop=True)


def write_frontier(
    marks: pd.DataFrame, finals: pd.DataFrame, out_dir: Path, held_out: int, scope: str
) -> list[Path]:
    """frontier.csv (the marks), frontier_final.csv (each run's last model on the whole validation split), its
    Markdown frontier_final.md (made from the CSV alone, for the documentation) and frontier.png (the marks,
    titled with `scope`, e.g. "mnist, seed 0") in out_dir, each replaced whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        atomic_write_text(out_dir / name, df.to_csv(index=False, float_format="%.6g"))
        for name, df in (("frontier.csv", marks), ("frontier_final.csv", finals))
    ]
    written.append(atomic_write_text(out_dir / "frontier_final.md", final_markdown(pd.read_csv(written[1]))))
    return [*written, plot_frontier(marks, out_dir / "frontier.png", held_out, scope)]


def final_markdown(finals: pd.DataFrame) -> str:
    """frontier_final.csv as a Markdown table: each cell's recipes, best first, with their passes and seconds."""
    lines = ["| cell | recipe | validation NLL ± SE | passes | training seconds | k | held-out images |",
             "|---|---|---|---|---|---|---|"]
    for _, rows in finals.groupby("cell", sort=False):
        for r in rows.sort_values("valid_nll", kind="stable").itertuples():
            lines.append(f"| {r.cell} | {r.recipe} | {r.valid_nll:.2f} ± {r.valid_se:.2f} | {int(r.passes)} | "
                         f"{r.train_seconds:,.0f} | {int(r.k):,} | {int(r.n):,} |")
    return "\n".join(lines) + "\n"


def final_text(finals: pd.DataFrame) -> str:
    """Each cell's recipes, best first, by their last model's NLL on the whole validation split: what to choose."""
    lines = []
    for cell, rows in finals.groupby("cell", sort=False):
        best = rows.sort_values("valid_nll", kind="stable")
        k, n = int(best["k"].iloc[0]), int(best["n"].iloc[0])
        lines.append(f"{cell}: validation NLL of each recipe's last model (k={k:,}, {n:,} held-out images), best first")
        lines += [
            f"  {r.recipe:<12} {r.valid_nll:8.2f} ± {r.valid_se:.2f}  after {int(r.passes)} passes, "
            f"{r.train_seconds:,.0f} training seconds"
            for r in best.itertuples()
        ]
    return "\n".join(lines)


def plot_frontier(df: pd.DataFrame, path: Path, held_out: int, scope: str) -> Path:
    """Validation NLL against training seconds (log scale), a panel per cell and a line per recipe, each point
    a pass mark; the legend gives each line's last pass (labels at the lines' ends would collide where the
    lines end close together, as the recipes of one budget do)."""
    cells = list(dict.fromkeys(df["cell"]))
    fig, axes = plt.subplots(1, max(len(cells), 1), figsize=(6.4 * max(len(cells), 1), 4.6), squeeze=False)
    for ax, cell in zip(axes[0], cells, strict=False):
        for recipe, rows in df[df["cell"] == cell].groupby("recipe", sort=False):
            label = f"{recipe}: {int(rows['passes'].iloc[-1])} passes"
            ax.plot(rows["train_seconds"], rows["valid_nll"], marker="o", markersize=3, label=label)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training seconds (one model per core, log scale)")
        ax.set_ylabel("validation NLL (nats; lower is better)")
        ax.set_title(cell, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper right")
    k, n = (int(df["k"].iloc[0]), int(df["n"].iloc[0])) if len(df) else (0, 0)
    fig.suptitle(
        f"Time to quality, {scope}: validation NLL (k={k:,}, the first {n:,} of {held_out:,} training images "
        "held out of training)",
        fontsize=11,
    )
    fig.tight_layout()
    return save_figure(fig, path)
