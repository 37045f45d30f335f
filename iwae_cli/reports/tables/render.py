"""What the table commands write and print: CSV and Markdown files, figures, and the terminal summary."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from iwae_cli.core.atomic import atomic_write_text
from iwae_cli.reports.plots import plot_learning_curves, plot_nll_vs_paper, plot_sample_grids
from iwae_cli.reports.tables.claims import claims_text


def fmt(value: Any, spec: str = ".2f") -> str:
    if missing(value):
        return "–"
    return format(value, spec) if isinstance(value, float | int) and spec else str(value)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def provenance_line(rows: pd.DataFrame, prefixes: tuple[str, ...] = ("",)) -> str:
    """Where a table's NLLs came from, in one sentence under it: each distinct k, n, split, checkpoint passes and
    environment among its cells (the CSV has every cell's own, results.PROVENANCE_KEYS)."""

    def values(key: str) -> str:
        found = [v for p in prefixes if f"{p}{key}" in rows for v in rows[f"{p}{key}"] if not missing(v)]
        return ", ".join(dict.fromkeys(str(v) for v in found)) or "–"

    return (
        f"Evaluated with k = {values('eval_k')} on n = {values('eval_n')} {values('eval_split')} images, from each "
        f"run's finished checkpoint (passes {values('eval_passes')}; ? = recorded by older code); iwae "
        f"{values('eval_iwae')} (commit {values('eval_commit')}), torch {values('eval_torch')}, device "
        f"{values('eval_device')}, threads {values('eval_threads')}."
    )


def write_table_files(out_dir: Path, name: str, rows: pd.DataFrame, markdown: str) -> None:
    """table CSV (machine-readable) and Markdown (for people), each written atomically."""
    atomic_write_text(out_dir / f"{name}.csv", rows.to_csv(index=False))
    atomic_write_text(out_dir / f"{name}.md", markdown)


def write_claims_file(path: Path, claims: list[dict]) -> None:
    """The claims as CSV (one row per claim: what is claimed, the case, the evidence, the verdict), atomically."""
    atomic_write_text(path, pd.DataFrame(claims).to_csv(index=False))


def table_figures(out_dir: Path, rows: pd.DataFrame, run_dirs: list[Path]) -> None:
    """nll_vs_paper.png, learning_curves.png and samples.png next to the tables."""
    plot_nll_vs_paper(rows.to_dict("records"), out_dir / "nll_vs_paper.png")
    plot_learning_curves(run_dirs, out_dir / "learning_curves.png")
    plot_sample_grids(run_dirs, out_dir / "samples.png")


TERMINAL_COLUMNS = (
    "dataset",
    "layers",
    "k",
    "objective",
    "nll",
    "nll_se",
    "paper_nll",
    "nll_minus_paper",
    "units",
    "paper_units",
    "status",
)


def render_terminal(
    df: pd.DataFrame, claims: list[dict], path: Path, columns: tuple[str, ...] = TERMINAL_COLUMNS
) -> str:
    """What the table commands print: the table at a glance (`columns` of it), the claims, and where the files
    are."""
    columns = [c for c in columns if c in df.columns]
    shown = df[columns].astype(object).where(df[columns].notna(), "")
    shown["status"] = shown["status"].astype(str).str.slice(0, 60)
    lines = [
        shown.to_string(index=False),
        "",
        "The paper's claims:",
        *claims_text(claims),
        "",
        f"written: {path} (and .md, figures beside it)",
    ]
    return "\n".join(lines)
