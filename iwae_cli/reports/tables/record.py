"""The documented tables of record, generated from their CSV files alone (docs/results/<profile>/): table1.csv and
table1_claims.csv become table1.md, table2.csv and table2_claims.csv become table2.md. The documentation includes
these Markdown files, so every number it shows is one of the CSVs' (scripts/record_results.py writes them;
tests/reports/test_record.py checks that the committed files are what the CSVs give).

Each cell: our NLL (the mean over seeds ± its standard error over test examples, [each seed's]), the seed
standard deviation (training noise), the paper's NLL, our distance to it, and the active units (each seed's)
beside the paper's; then every claim's verdict, judged over test examples and over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iwae_cli.core.atomic import atomic_write_text
from iwae_cli.reports.tables.claims import claims_text
from iwae_cli.reports.tables.render import fmt, missing, provenance_line

# Each cell's columns, after its objective (Table 1) or stage (Table 2)
HEAD = "NLL ours ± SE [seeds] | seed sd | paper | ours − paper | units ours / paper"
RECORD_TABLES = {"table1": ("table1.csv", "table1_claims.csv"), "table2": ("table2.csv", "table2_claims.csv")}


def render_record(folder: Path) -> dict[str, str]:
    """The Markdown of each table of record in `folder` that has both its CSV files, by file name."""
    made = {}
    for name, (table, claims) in RECORD_TABLES.items():
        if (folder / table).is_file() and (folder / claims).is_file():
            rows, listed = pd.read_csv(folder / table), read_claims(folder / claims)
            made[f"{name}.md"] = (table1_record if name == "table1" else table2_record)(rows, listed)
    return made


def read_claims(path: Path) -> list[dict[str, Any]]:
    """A claims CSV as the claims module wrote them: empty cells as None, whole numbers of seeds as ints."""
    df = pd.read_csv(path)
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    for claim in records:
        seeds = claim.get("seeds")
        if isinstance(seeds, float) and seeds.is_integer():
            claim["seeds"] = int(seeds)
    return records


def nll_cells(r: dict[str, Any], prefix: str = "") -> list[str]:
    """NLL ± SE [per seed], seed sd, the paper's, ours - paper's, units (per seed) / paper's."""
    nll, paper = r.get(f"{prefix}nll"), r.get(f"{prefix}paper_nll")
    if missing(nll):
        ours = f"– ({r.get('status', 'not measured')})"
    else:
        ours = f"{fmt(nll)} ± {fmt(r.get(f'{prefix}nll_se'))}"
        if "/" in str(r.get(f"{prefix}nll_per_seed", "")):
            ours += f" [{r[f'{prefix}nll_per_seed']}]"
    distance = "–" if missing(nll) or missing(paper) else f"{float(nll) - float(paper):+.2f}"
    units = f"{fmt(r.get(f'{prefix}units'), '')} / {fmt(r.get(f'{prefix}paper_units'), '')}"
    return [ours, fmt(r.get(f"{prefix}nll_seed_std")), fmt(paper), distance, units]


def table1_record(rows: pd.DataFrame, claims: list[dict[str, Any]]) -> str:
    """Table 1 in the paper's layout, VAE and IWAE side by side for each dataset, depth and k."""
    lines = [
        f"| dataset | layers | k | VAE {HEAD} | IWAE {HEAD} |",
        "|---|---|---|" + "---|" * 10,
    ]
    for (d, depth, k), group in rows.groupby(["dataset", "layers", "k"], sort=False):
        cells = []
        for objective in ("vae", "iwae"):
            found = group[group.objective == objective]
            r = found.iloc[0].to_dict() if len(found) else {"status": "not run"}
            shared = str(r.get("status", "")).startswith("done (")
            cells += nll_cells(r) if not shared else ["the VAE k=1 model", *nll_cells(r)[1:]]
        lines.append(f"| {d} | {depth} | {k} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *legend(rows, ("",)), "", *claims_lines(claims)]) + "\n"


def table2_record(rows: pd.DataFrame, claims: list[dict[str, Any]]) -> str:
    """Table 2: each experiment's first stage and the second stage that continues it with the other objective."""
    lines = [f"| experiment | first stage | {HEAD} | second stage | {HEAD} |", "|---|---|" + "---|" * 11]
    for r in rows.to_dict("records"):
        stages = []
        for stage in ("first", "second"):
            stages += [f"{str(r[f'{stage}_objective']).upper()} k={r[f'{stage}_k']}", *nll_cells(r, f"{stage}_")]
        lines.append(f"| {r['experiment']} | " + " | ".join(stages) + " |")
    return "\n".join([*lines, "", *legend(rows, ("first_", "second_")), "", *claims_lines(claims)]) + "\n"


def legend(rows: pd.DataFrame, prefixes: tuple[str, ...]) -> list[str]:
    """What the columns mean, and where the NLLs came from."""
    return [
        "NLL: test negative log-likelihood in nats, the mean over seeds ± its standard error over the test images,",
        "[each seed's]; seed sd: the standard deviation of the seeds' NLLs (training noise); ours − paper: our",
        "distance to the paper's NLL (positive: worse). Units: active units per stochastic layer, each seed's.",
        "",
        provenance_line(rows, prefixes),
    ]


def claims_lines(claims: list[dict[str, Any]]) -> list[str]:
    """The tally of verdicts, then each claim and case as the table commands list them."""
    verdicts = pd.Series([str(c["verdict"]).split(" (")[0] for c in claims], dtype=object).value_counts()
    tally = ", ".join(f"{n} {verdict}" for verdict, n in verdicts.items()) or "none judged"
    return [f"The paper's claims ({len(claims)} cases: {tally}):", "", *claims_text(claims)]


def write_record(folder: Path) -> list[Path]:
    """Write each table of record's Markdown beside its CSVs; the files written."""
    return [atomic_write_text(folder / name, text) for name, text in render_record(folder).items()]
