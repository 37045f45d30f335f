"""Table 1's rows and Markdown: each cell's numbers beside the paper's, in the paper's layout (`iwae table1`
trains the cells and writes what this module makes, iwae_cli.tasks.tables.table1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iwae_cli.reports.tables.claims import claims_text
from iwae_cli.reports.tables.paper import paper_cell
from iwae_cli.reports.tables.render import fmt, missing, provenance_line
from iwae_cli.reports.tables.results import cell_summary, evaluated, unfinished_status

SHARED_NOTE = (
    "IWAE k=1 is the VAE k=1 model: L_1 = L_VAE, and with the same seed, schedule and optimiser the two "
    "trainings are identical, so it is trained once and reported in both rows."
)


def table1_row(
    cell: tuple[str, int, int, str],
    runs: list[Path],
    skip_reason: str | None,
    *,
    schedule: str,
    protocol: str,
    seeds: int,
    shared: bool,
) -> dict[str, Any]:
    """One cell (dataset, depth, k, objective) of a table made with `schedule`, `protocol` and `seeds` seeds:
    our numbers (means over seeds), the paper's, and the status (why it is empty, if it is). `shared`: the cell
    reads the runs of its twin (the VAE k=1 model)."""
    d, depth, k, o = cell
    paper_nll, paper_units = paper_cell(d, depth, k, o)
    row: dict[str, Any] = {
        "dataset": d,
        "layers": depth,
        "k": k,
        "objective": o,
        "schedule": schedule,
        "protocol": protocol,
    }
    done = [r for r in runs if evaluated(r)]
    if done and len(done) == seeds:
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
        provenance_line(rows),
        "",
        "## The paper's claims",
        "",
    ]
    lines += claims_text(claims)
    return "\n".join(lines) + "\n"
