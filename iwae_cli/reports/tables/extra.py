"""`iwae table-extra`'s rows, verdicts and text: newer objectives beside VAE and IWAE, several seeds per cell,
each compared with a baseline objective.

Each difference from the baseline is paired over the same binarised test examples and over seeds; a verdict
needs it to exceed NOISE_Z standard errors of both kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iwae_cli.reports.tables.claims import NOISE_Z
from iwae_cli.reports.tables.render import fmt, missing, provenance_line
from iwae_cli.reports.tables.results import cell_summary, paired_nll_difference, seed_level_difference

# what the terminal shows of table_extra.csv
TERMINAL_COLUMNS = (
    "dataset",
    "layers",
    "k",
    "objective",
    "nll",
    "nll_per_seed",
    "nll_seed_std",
    "units",
    "vs_baseline",
    "vs_baseline_se",
    "verdict",
)


def extra_row(
    d: str, depth: int, k: int, o: str, cell: dict[str, list[Path]], baseline: str, unfinished: str, seeds: int
) -> dict[str, Any]:
    """One objective's cell, with its difference to the baseline: paired over test examples and over seeds.
    `unfinished` is the status shown unless all `seeds` runs of the cell have been evaluated."""
    row: dict[str, Any] = {"dataset": d, "layers": depth, "k": k, "objective": o}
    runs = cell.get(o)
    if not runs or len(runs) < seeds:
        row["status"] = unfinished
        return row
    row.update(cell_summary(runs), status="done")
    if o != baseline and cell.get(baseline):
        paired = paired_nll_difference(runs, cell[baseline])
        by_seed = seed_level_difference(runs, cell[baseline])
        if paired:
            row["vs_baseline"], row["vs_baseline_se"] = round(paired[0], 3), round(paired[1], 3)
        if by_seed:
            row["vs_baseline_seed_se"] = round(by_seed[1], 3)
        noise = max(row.get("vs_baseline_se") or 0.0, row.get("vs_baseline_seed_se") or 0.0)
        if paired:
            row["verdict"] = (
                "within noise"
                if abs(paired[0]) <= NOISE_Z * noise
                else "better than " + baseline
                if paired[0] < 0
                else "worse than " + baseline
            )
    return row


def extra_markdown(df: pd.DataFrame, header: str, baseline: str) -> str:
    """One line per objective and cell, its difference to `baseline` with both standard errors and the verdict."""
    lines = [
        header,
        "",
        f"| dataset | layers | k | objective | test NLL (mean over seeds) | NLL per seed | seed std | units | "
        f"NLL - {baseline} | SE (examples) | SE (seeds) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        lines.append(
            "| "
            + " | ".join(
                [
                    r["dataset"],
                    str(r["layers"]),
                    str(r["k"]),
                    r["objective"],
                    fmt(r.get("nll")) if not missing(r.get("nll")) else f"– ({r.get('status')})",
                    fmt(r.get("nll_per_seed"), ""),
                    fmt(r.get("nll_seed_std")),
                    fmt(r.get("units"), ""),
                    fmt(r.get("vs_baseline"), "+.2f"),
                    fmt(r.get("vs_baseline_se")),
                    fmt(r.get("vs_baseline_seed_se")),
                    fmt(r.get("verdict"), ""),
                ]
            )
            + " |"
        )
    lines += [
        "",
        f"A difference counts as larger than its noise when it exceeds {NOISE_Z:g} standard errors, both over "
        "test examples (paired, same binarised test set) and over seeds (paired by seed).",
        "",
        provenance_line(df),
    ]
    return "\n".join(lines) + "\n"


def extra_terminal(df: pd.DataFrame, path: Path) -> str:
    """What `iwae table-extra` prints: the table at a glance and where the files are."""
    shown = df[[c for c in TERMINAL_COLUMNS if c in df.columns]].to_string(index=False)
    return f"{shown}\n\nwritten: {path} (and .md)"
