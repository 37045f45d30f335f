"""`iwae table-extra`: newer objectives beside VAE and IWAE, several seeds per cell, each compared with a baseline.

Each difference from the baseline is paired over the same binarised test examples and over seeds; a verdict
needs it to exceed NOISE_Z standard errors of both kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from iwae_cli.reports.tables.claims import NOISE_Z
from iwae_cli.reports.tables.outcome import check_complete
from iwae_cli.reports.tables.render import fmt, missing, table_figures, write_table_files
from iwae_cli.reports.tables.results import (
    cell_summary,
    evaluated,
    paired_nll_difference,
    seed_level_difference,
    unfinished_status,
)
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.tables.sweep import profile_header, tables_dir, train_grid


@user_facing
def table_extra_task(cfg: DictConfig) -> str:
    """Newer objectives beside VAE and IWAE, several seeds per cell, each compared with the baseline objective.
    Exits 0 only when every cell has all its seeds evaluated."""
    skipped, runs_of = train_grid(cfg)
    rows = []
    for d in cfg.datasets:
        for depth in cfg.depths:
            for k in cfg.ks:
                launched = {o: runs_of(d, depth, o, k) for o in cfg.objectives}
                cell = {o: [r for r in runs if evaluated(r)] for o, runs in launched.items()}
                for o in cfg.objectives:
                    unevaluated = [r for r in launched[o] if r not in cell[o]]
                    status = unfinished_status(unevaluated or launched[o], skipped.get(d))
                    rows.append(extra_row(d, depth, k, o, cell, str(cfg.baseline), status, len(cfg.seeds)))
    df = pd.DataFrame(rows)
    out_dir = tables_dir(cfg)
    write_table_files(
        out_dir,
        "table_extra",
        df,
        extra_markdown(
            df,
            profile_header("Beyond the paper: gradient estimators and tighter bounds", "table-extra", cfg),
            str(cfg.baseline),
        ),
    )
    table_figures(out_dir / "extra", df.assign(paper_nll=None), [Path(p) for p in _run_dirs(df)])
    columns = [
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
    ]
    print(df[[c for c in columns if c in df.columns]].to_string(index=False))
    print(f"\nwritten: {out_dir / 'table_extra.csv'} (and .md)")
    done = df.status == "done"
    check_complete("table-extra", int(done.sum()), len(df), str(out_dir / "table_extra.md"), list(df.status[~done]))
    return str(out_dir / "table_extra.csv")


def _run_dirs(df: pd.DataFrame) -> list[str]:
    return [p for cell in df.get("run_dir", pd.Series(dtype=str)).dropna() for p in str(cell).split(";") if p]


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
    ]
    return "\n".join(lines) + "\n"
