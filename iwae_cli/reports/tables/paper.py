"""The paper's numbers (iwae_cli/reports/tables/paper_results.csv): Table 1's cells and Table 2's experiments."""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd


@functools.cache
def paper_results() -> pd.DataFrame:
    """The paper's Table 1 and Table 2 values (iwae_cli/reports/tables/paper_results.csv)."""
    with resources.files("iwae_cli.reports.tables").joinpath("paper_results.csv").open() as f:
        return pd.read_csv(f, comment="#", dtype={"units": str})


def paper_cell(dataset: str, layers: int, k: int, objective: str) -> tuple[float | None, str | None]:
    """The paper's (NLL, units) for a Table 1 cell, or (None, None)."""
    df = paper_results()
    row = df[
        (df.table == 1)
        & (df.dataset == dataset)
        & (df.layers == layers)
        & (df.k == k)
        & (df.objective == objective)
    ]
    return (float(row.nll.iloc[0]), str(row.units.iloc[0])) if len(row) else (None, None)


def total_units(label: str | None) -> int | None:
    """'16+5' -> 21."""
    return None if not label else sum(int(part) for part in str(label).split("+"))
