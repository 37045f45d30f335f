"""Table 2's rows, claims and Markdown: each experiment's two stages beside the paper's (`iwae table2` trains
them and writes what this module makes, iwae_cli.tasks.tables.table2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iwae_cli.reports.tables.claims import claims_text, nll_claim, units_claim
from iwae_cli.reports.tables.paper import paper_results
from iwae_cli.reports.tables.render import fmt, missing, provenance_line
from iwae_cli.reports.tables.results import PROVENANCE_KEYS, cell_summary, evaluated, unfinished_status

# what the terminal shows of table2.csv
TERMINAL_COLUMNS = (
    "experiment",
    *(
        f"{stage}_{column}"
        for stage in ("first", "second")
        for column in ("objective", "k", "nll", "paper_nll", "units")
    ),
    "status",
)


def experiment_claims(
    exp: int, first: tuple, second: tuple, pairs: list[tuple[Path, Path]]
) -> list[dict[str, Any]]:
    """VAE -> IWAE should lower the NLL and raise the active units; IWAE -> VAE the opposite. `pairs`: each
    seed's first-stage run and its second stage; judged on the seeds whose second stage has its numbers, each
    paired with its own first stage."""
    done = [(p, c) for p, c in pairs if evaluated(c)]
    before, after = [p for p, _ in done], [c for _, c in done]
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
    exp: int, first: tuple, second: tuple, pairs: list[tuple[Path, Path]], seeds: int
) -> dict[str, Any]:
    """One experiment (`pairs`: each finished seed's first-stage run and its second stage): each stage's NLL (the
    mean over seeds, and each seed's), units and the paper's; the status says why it is incomplete when any of
    the `seeds` lacks its second stage."""
    paper = paper_results()
    paper = paper[(paper.table == 2) & (paper.experiment == exp)].set_index("stage")
    parents, children = [p for p, _ in pairs], [c for _, c in pairs]
    finished = [c for c in children if evaluated(c)]
    row: dict[str, Any] = {"experiment": exp}
    for stage, (objective, k), runs in (("first", first, parents), ("second", second, finished)):
        # a stage's numbers only with every seed's run, as Table 1's cells
        summary = cell_summary(runs) if len(runs) == seeds else {}
        row.update(
            {
                f"{stage}_objective": objective,
                f"{stage}_k": k,
                f"{stage}_nll": summary.get("nll"),
                f"{stage}_nll_se": summary.get("nll_se"),
                f"{stage}_nll_seed_std": summary.get("nll_seed_std"),
                f"{stage}_nll_per_seed": summary.get("nll_per_seed"),
                f"{stage}_units": summary.get("units"),
                f"{stage}_units_expected": summary.get("units_expected"),
                f"{stage}_paper_nll": float(paper.loc[stage, "nll"]),
                f"{stage}_paper_units": str(paper.loc[stage, "units"]),
                f"{stage}_passes": summary.get("passes"),
                f"{stage}_run_dir": summary.get("run_dir"),
                **{f"{stage}_{key}": summary.get(key) for key in PROVENANCE_KEYS},
            }
        )
        row[f"{stage}_seeds"] = summary.get("seeds")
    if len(finished) == seeds:
        row["status"] = "done"
    elif len(parents) < seeds:
        row["status"] = (
            f"not run for {seeds - len(parents)} of {seeds} seeds: the {first[0].upper()} k={first[1]} run "
            "it starts from did not finish"
        )
    else:
        unfinished = [c for c in children if c not in finished]
        row["status"] = unfinished_status([c for c in unfinished if c.exists()], None)
    return row


def table2_markdown(df: pd.DataFrame, claims: list[dict], header: str) -> str:
    """Both experiments, each stage ours beside the paper's, then the claims."""
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
            if "/" in str(r.get(f"{stage}_nll_per_seed", "")):
                ours += f" [{r[f'{stage}_nll_per_seed']}]"
            cells += [
                f"{r[f'{stage}_objective'].upper()}, k={r[f'{stage}_k']}",
                ours,
                fmt(r[f"{stage}_paper_nll"]),
                f"{fmt(r.get(f'{stage}_units'), '')} / {r[f'{stage}_paper_units']}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", provenance_line(df, ("first_", "second_")), "", "## The paper's claims", "", *claims_text(claims)]
    return "\n".join(lines) + "\n"
