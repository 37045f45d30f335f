"""`iwae table1`: every Table 1 cell trained and evaluated (one sweep), ours beside the paper's, claims checked."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from iwae_cli.reports.plots import plot_nll_vs_passes
from iwae_cli.reports.tables.claims import table1_claims
from iwae_cli.reports.tables.outcome import check_complete
from iwae_cli.reports.tables.render import (
    render_terminal,
    table_figures,
    write_claims_file,
    write_table_files,
)
from iwae_cli.reports.tables.results import CellKey, cell_summary, evaluated, runs_by_schedule
from iwae_cli.reports.tables.table1 import table1_markdown, table1_row
from iwae_cli.runs.records import run_state
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.tables.publish import TABLE1_FILES, publish
from iwae_cli.tasks.tables.settings import checked_settings
from iwae_cli.tasks.tables.sweep import profile_header, run_filter, shared_cell, tables_dir, train_grid


@user_facing
def table1_task(cfg: DictConfig) -> str:
    """Check every setting, train and evaluate every Table 1 cell (one Hydra multirun), then replace table1.csv/
    .md, its claims and figures together. Exits 0 only when every cell has its numbers (outcome.py: the others)."""
    spec = checked_settings(cfg)
    skipped, runs_of = train_grid(cfg, spec)
    layers, objectives = list(spec.depths), list(spec.objectives)
    made_with = {"schedule": spec.profile.schedule, "protocol": str(cfg.protocol.name), "seeds": len(spec.seeds)}
    rows, cells = [], {}
    for d, depth, k, o in product(spec.datasets, layers, spec.ks, objectives):
        runs = runs_of(d, depth, o, k)
        cells[(d, depth, o, k)] = [r for r in runs if run_state(r) == "done"]
        shared = shared_cell(o, k, objectives) != (o, k)
        rows.append(table1_row((d, depth, k, o), runs, skipped.get(d), shared=shared, **made_with))
    df = pd.DataFrame(rows)
    claims = table1_claims(cells, list(spec.datasets), layers)
    out_dir = tables_dir(cfg)

    def write(folder: Path) -> None:
        write_table_files(folder, "table1", df, table1_markdown(df, claims, profile_header("Table 1", "table1", cfg)))
        write_claims_file(folder / "table1_claims.csv", claims)
        table_figures(folder, df, sorted({r for runs in cells.values() for r in runs}))
        plot_nll_vs_passes(schedule_points(cfg), df.to_dict("records"), folder / "nll_vs_passes.png")

    publish(out_dir, TABLE1_FILES, "Table 1", df.status, write)
    print(render_terminal(df, claims, out_dir / "table1.csv"))
    done = df[df.status.str.startswith("done")]
    check_complete("Table 1", len(done), len(df), str(out_dir / "table1.md"), list(df.status[~df.index.isin(done.index)]))
    return str(out_dir / "table1.csv")


def schedule_points(cfg: DictConfig) -> list[dict[str, Any]]:
    """Each table cell's NLL (mean over the table's seeds) on every schedule found in the output root whose runs
    are the table's in all but the schedule: how far 10, 40 or 3,280 passes get."""
    objectives, seeds = list(cfg.objectives), list(cfg.seeds)
    cells = [
        (d, depth, o, k)
        for d, depth, k, o in product(cfg.datasets, cfg.depths, cfg.ks, objectives)
        if shared_cell(o, k, objectives) == (o, k)  # a twin's runs are drawn once, as their own cell
    ]
    points = []
    for schedule, found in runs_by_schedule(Path(cfg.output_root), run_filter(cfg)).items():
        for d, depth, o, k in cells:
            runs = [found.get(CellKey(d, depth, o, k, s)) for s in seeds]
            if all(r is not None and evaluated(r) for r in runs):
                summary = cell_summary(runs)
                points.append(
                    {"dataset": d, "layers": depth, "objective": o, "k": k, "schedule": schedule}
                    | {key: summary[key] for key in ("passes", "nll", "eval_n")}
                )
    return points
