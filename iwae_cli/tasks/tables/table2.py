"""`iwae table2`: the paper's Table 2, switching objectives (MNIST, one stochastic layer).

Experiment 1 continues the VAE (k=1) with the IWAE objective (k=50), experiment 2 the IWAE (k=50) with the VAE
(k=1), each for the schedule's switch stages with the optimiser state kept (`iwae switch-objective`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from iwae_cli.core.runtime import cpu_count
from iwae_cli.data.loading import ensure_files
from iwae_cli.reports.tables.claims import claims_text, nll_claim, units_claim
from iwae_cli.reports.tables.outcome import check_complete
from iwae_cli.reports.tables.paper import paper_results
from iwae_cli.reports.tables.render import fmt, missing, render_terminal, write_table_files
from iwae_cli.reports.tables.results import CellKey, cell_summary, collect_runs, evaluated, unfinished_status
from iwae_cli.runs.records import run_state
from iwae_cli.tasks.job import user_facing
from iwae_cli.tasks.tables.sweep import (
    Grid,
    job_overrides,
    profile_header,
    run_filter,
    run_parallel,
    run_sweep,
)

log = logging.getLogger(__name__)

# (experiment, first stage (objective, k), second stage (objective, k)), MNIST, one stochastic layer.
TABLE2_EXPERIMENTS = ((1, ("vae", 1), ("iwae", 50)), (2, ("iwae", 50), ("vae", 1)))


def switch_command(cfg: DictConfig, parent: Path, first: tuple, second: tuple, threads: int) -> list[str]:
    """`iwae switch-objective` of one experiment; the child inherits the parent's protocol and loss scale.
    Its trackers name its cell by both stages."""
    objective, k = second
    cell = f"mnist/L1-{first[0]}-k{first[1]} -> {objective}-k{k}"
    return [
        sys.executable,
        "-m",
        "iwae_cli",
        "switch-objective",
        f"run={parent}",
        f"model={objective}",
        f"k={k}",
        *job_overrides(cfg, threads),
        *([f"++tags.cell='{cell}'"] if cfg.get("logger") else []),
    ]


def parent_runs(cfg: DictConfig) -> dict[int, Path]:
    """The finished Table 1 runs each experiment starts from, trained first where they do not exist."""
    seed, root = int(cfg.seed), Path(cfg.output_root)
    parents = {exp: CellKey("mnist", 1, first[0], first[1], seed) for exp, first, _ in TABLE2_EXPERIMENTS}
    found = collect_runs(root, run_filter(cfg))
    todo = [key for key in parents.values() if key not in found or run_state(found[key]) != "done"]
    if todo:
        ensure_files("mnist", cfg.get("data_dir"), cfg.get("download", "auto"))
    for key in todo:
        grid = {"dataset": ["mnist"], "layers": [1], "k": [key.k], "model": [key.objective], "seed": [seed]}
        run_sweep(cfg, Grid(grid))
    found = collect_runs(root, run_filter(cfg))
    return {exp: found[key] for exp, key in parents.items() if key in found and run_state(found[key]) == "done"}


@user_facing
def table2_task(cfg: DictConfig) -> str:
    """Table 2: continue the MNIST 1-layer VAE (k=1) with IWAE (k=50) and vice versa; write table2.csv/.md.
    Exits 0 only when both experiments have their numbers."""
    ready = parent_runs(cfg)
    threads = max(1, cpu_count() // max(1, len(ready)))
    commands = [
        switch_command(cfg, ready[exp], first, second, threads)
        for exp, first, second in TABLE2_EXPERIMENTS
        if exp in ready
    ]
    if commands and any(code != 0 for code in run_parallel(commands)):
        log.warning("a switch-objective run failed; its row is marked in the table")
    rows, claims = [], []
    for exp, first, second in TABLE2_EXPERIMENTS:
        parent = ready.get(exp)
        child = parent / f"switch-{second[0]}-k{second[1]}" if parent else None
        rows.append(table2_row(exp, first, second, parent, child))
        claims += experiment_claims(exp, first, second, parent, child)
    df = pd.DataFrame(rows)
    out_dir = Path(cfg.output_root) / "tables"
    write_table_files(
        out_dir, "table2", df, table2_markdown(df, claims, profile_header("Table 2", "table2", cfg))
    )
    print(render_terminal(df, claims, out_dir / "table2.csv"))
    done = df.status == "done"
    check_complete("Table 2", int(done.sum()), len(df), str(out_dir / "table2.md"), list(df.status[~done]))
    return str(out_dir / "table2.csv")


def experiment_claims(
    exp: int, first: tuple, second: tuple, parent: Path | None, child: Path | None
) -> list[dict[str, Any]]:
    """VAE -> IWAE should lower the NLL and raise the active units; IWAE -> VAE the opposite."""
    before = [parent] if parent else []
    after = [child] if child and evaluated(child) else []
    lower = exp == 1
    case = f"{first[0].upper()} k={first[1]} -> {second[0].upper()} k={second[1]}"
    return [
        nll_claim(
            f"switching {'lowers' if lower else 'raises'} NLL",
            case,
            after,
            before,
            "NLL(after) - NLL(before)",
            lower=lower,
        ),
        units_claim(
            f"switching {'raises' if lower else 'lowers'} active units",
            case,
            after,
            before,
            "units(after) - units(before)",
            more=lower,
        ),
    ]


def table2_row(
    exp: int, first: tuple, second: tuple, parent: Path | None, child: Path | None
) -> dict[str, Any]:
    paper = paper_results()
    paper = paper[(paper.table == 2) & (paper.experiment == exp)].set_index("stage")
    row: dict[str, Any] = {"experiment": exp}
    for stage, (objective, k), run in (("first", first, parent), ("second", second, child)):
        summary = cell_summary([run]) if run is not None and evaluated(run) else {}
        row.update(
            {
                f"{stage}_objective": objective,
                f"{stage}_k": k,
                f"{stage}_nll": summary.get("nll"),
                f"{stage}_nll_se": summary.get("nll_se"),
                f"{stage}_units": summary.get("units"),
                f"{stage}_units_expected": summary.get("units_expected"),
                f"{stage}_paper_nll": float(paper.loc[stage, "nll"]),
                f"{stage}_paper_units": str(paper.loc[stage, "units"]),
                f"{stage}_passes": summary.get("passes"),
                f"{stage}_run_dir": str(run) if run else None,
            }
        )
    if row["second_nll"] is not None:
        row["status"] = "done"
    elif parent is None:
        row["status"] = f"not run: the {first[0].upper()} k={first[1]} run it starts from did not finish"
    else:
        row["status"] = unfinished_status([child] if child and child.exists() else [], None)
    return row


def table2_markdown(df: pd.DataFrame, claims: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| experiment | first stage | NLL ours | NLL paper | units ours / paper | second stage | "
        "NLL ours | NLL paper | units ours / paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        cells = [str(r["experiment"])]
        for stage in ("first", "second"):
            nll = r.get(f"{stage}_nll")
            ours = f"{fmt(nll)} ± {fmt(r.get(f'{stage}_nll_se'))}" if not missing(nll) else f"– ({r['status']})"
            cells += [
                f"{r[f'{stage}_objective'].upper()}, k={r[f'{stage}_k']}",
                ours,
                fmt(r[f"{stage}_paper_nll"]),
                f"{fmt(r.get(f'{stage}_units'), '')} / {r[f'{stage}_paper_units']}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## The paper's claims", "", *claims_text(claims)]
    return "\n".join(lines) + "\n"
