"""`iwae table1`: every Table 1 cell trained and evaluated (one sweep), ours beside the paper's, claims checked."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from iwae_cli.reports.plots import plot_nll_vs_passes
from iwae_cli.reports.tables.claims import claims_text, table1_claims
from iwae_cli.reports.tables.outcome import check_complete
from iwae_cli.reports.tables.paper import paper_cell
from iwae_cli.reports.tables.render import fmt, missing, render_terminal, table_figures, write_table_files
from iwae_cli.reports.tables.results import (
    CellKey,
    cell_summary,
    evaluated,
    runs_by_schedule,
    unfinished_status,
)
from iwae_cli.runs.atomic import atomic_write_text
from iwae_cli.runs.records import run_state
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.tables.sweep import profile_header, run_filter, shared_cell, tables_dir, train_grid

SHARED_NOTE = (
    "IWAE k=1 is the VAE k=1 model: L_1 = L_VAE, and with the same seed, schedule and optimiser the two "
    "trainings are identical, so it is trained once and reported in both rows."
)


@user_facing
def table1_task(cfg: DictConfig) -> str:
    """Train and evaluate every Table 1 cell (one Hydra multirun), then write table1.csv/.md and figures.
    Exits 0 only when every cell has its numbers (see outcome.py for the other codes)."""
    skipped, runs_of = train_grid(cfg)
    layers, objectives = list(cfg.depths), list(cfg.objectives)
    rows, cells = [], {}
    for d in cfg.datasets:
        for depth in layers:
            for k in cfg.ks:
                for o in objectives:
                    runs = runs_of(d, depth, o, k)
                    cells[(d, depth, o, k)] = [r for r in runs if run_state(r) == "done"]
                    twin = shared_cell(o, k, objectives)
                    rows.append(table1_row(d, depth, k, o, runs, skipped.get(d), cfg, twin != (o, k)))
    df = pd.DataFrame(rows)
    claims = table1_claims(cells, list(cfg.datasets), layers)
    out_dir = tables_dir(cfg)
    markdown = table1_markdown(df, claims, profile_header("Table 1", "table1", cfg))
    write_table_files(out_dir, "table1", df, markdown)
    atomic_write_text(out_dir / "table1_claims.csv", pd.DataFrame(claims).to_csv(index=False))
    table_figures(out_dir, df, sorted({r for runs in cells.values() for r in runs}))
    plot_nll_vs_passes(schedule_points(cfg), df.to_dict("records"), out_dir / "nll_vs_passes.png")
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


def table1_row(
    d: str, depth: int, k: int, o: str, runs: list[Path], skip_reason: str | None, cfg, shared: bool
) -> dict[str, Any]:
    """One cell: our numbers (means over seeds), the paper's, and the status (why it is empty, if it is)."""
    paper_nll, paper_units = paper_cell(d, depth, k, o)
    row: dict[str, Any] = {
        "dataset": d,
        "layers": depth,
        "k": k,
        "objective": o,
        "schedule": cfg.profile.schedule,
        "protocol": cfg.protocol.name,
    }
    done = [r for r in runs if evaluated(r)]
    if done and len(done) == len(cfg.seeds):
        row.update(cell_summary(done), status="done (the VAE k=1 model)" if shared else "done")
    else:
        row["status"] = unfinished_status([r for r in runs if r not in done] or runs, skip_reason)
        row["run_dir"] = str(runs[0]) if runs else None
    row.update(paper_nll=paper_nll, paper_units=paper_units)
    if row.get("nll") is not None and paper_nll is not None:
        row["nll_minus_paper"] = round(row["nll"] - paper_nll, 3)
    return row


def table1_markdown(rows: pd.DataFrame, claims: list[dict], header: str) -> str:
    """The paper's layout: one line per (dataset, layers, k), VAE and IWAE side by side, ours / paper."""
    lines = [
        header,
        "",
        "| dataset | layers | k | VAE NLL ours | VAE NLL paper | VAE units ours / paper | "
        "IWAE NLL ours | IWAE NLL paper | IWAE units ours / paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []  # why cells are empty, each reason once
    for (d, depth, k), group in rows.groupby(["dataset", "layers", "k"], sort=False):
        cells = []
        for o in ("vae", "iwae"):
            r = group[group.objective == o]
            r = r.iloc[0].to_dict() if len(r) else {}
            status = str(r.get("status", "not run"))
            reason = SHARED_NOTE if status.startswith("done (") else status
            if missing(r.get("nll")) or reason == SHARED_NOTE:
                notes += [] if reason in notes else [reason]
                mark = f" (note {notes.index(reason) + 1})"
            else:
                mark = ""
            ours = f"– {mark.strip()}" if missing(r.get("nll")) else f"{fmt(r.get('nll'))} ± {fmt(r.get('nll_se'))}{mark}"
            if "/" in str(r.get("nll_per_seed", "")):
                ours += f" [{r['nll_per_seed']}]"
            cells += [
                ours,
                fmt(r.get("paper_nll")),
                f"{fmt(r.get('units'), '')} / {fmt(r.get('paper_units'), '')}",
            ]
        lines.append(f"| {d} | {depth} | {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "NLL: test negative log-likelihood in nats (lower is better), ours (the mean over seeds) ± its standard",
        "error over test examples, [each seed's NLL] where there are several. Units: active units per stochastic layer (A_u > 0.01, or >= 0.01 under",
        "protocol=code), estimated as the authors' code does; table1.csv also has `units_expected` (the paper's",
        "definition, E over q(h1|x) for the second layer) and `nll_pruned` (the NLL with inactive units removed).",
        *[f"Note {i}: {reason}" for i, reason in enumerate(notes, start=1)],
        "",
        "## The paper's claims",
        "",
    ]
    lines += claims_text(claims)
    return "\n".join(lines) + "\n"
