"""The documented tables of record are generated from their CSV files (reports/tables/record.py): each cell's
numbers come from table1.csv / table2.csv, the claims from the claims CSVs, and the committed Markdown under
docs/results/ is exactly what its CSVs give."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from iwae_cli.reports.tables.record import render_record

RECORDS = Path(__file__).resolve().parents[2] / "docs" / "results"
CLAIM = {"claim": "IWAE NLL falls as k grows", "case": "mnist L1 k=50 vs 5", "difference_of": "NLL(k=50) - NLL(k=5)",
         "difference": -0.89, "se": 0.02, "seed_se": 0.01, "seeds": 3, "verdict": "holds"}


def write_table1(folder: Path) -> None:
    cell = {"dataset": "mnist", "layers": 1, "k": 50, "schedule": "fast", "protocol": "text", "seeds": "0+1+2",
            "eval_k": 5000, "eval_n": 10000, "eval_split": "test", "eval_passes": 90, "status": "done"}
    rows = [
        cell | {"objective": "vae", "nll": 88.5, "nll_se": 0.14, "nll_seed_std": 0.12, "nll_per_seed": "88.40/88.50/88.60",
                "units": "20/20/21", "paper_nll": 86.35, "paper_units": "20"},
        cell | {"objective": "iwae", "nll": 87.25, "nll_se": 0.13, "nll_seed_std": 0.05, "nll_per_seed": "87.20/87.25/87.30",
                "units": "25/26/25", "paper_nll": 84.78, "paper_units": "25"},
    ]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "table1.csv", index=False)
    pd.DataFrame([CLAIM, CLAIM | {"case": "mnist L2 k=50 vs 5", "seed_se": None, "verdict": "inconclusive (|diff| <= 2 SE)"}]
                 ).to_csv(folder / "table1_claims.csv", index=False)


def test_table1_is_rendered_from_its_csvs(tmp_path):
    write_table1(tmp_path)
    made = render_record(tmp_path)
    assert list(made) == ["table1.md"]  # no table2 CSVs, no table2.md
    row = next(line for line in made["table1.md"].splitlines() if line.startswith("| mnist | 1 | 50 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:8] == ["88.50 ± 0.14 [88.40/88.50/88.60]", "0.12", "86.35", "+2.15", "20/20/21 / 20"]
    assert cells[8:13] == ["87.25 ± 0.13 [87.20/87.25/87.30]", "0.05", "84.78", "+2.47", "25/26/25 / 25"]
    text = made["table1.md"]
    assert "The paper's claims (2 cases: 1 holds, 1 inconclusive):" in text
    # the claims as the table commands list them, with both standard errors and a whole number of seeds
    assert "NLL(k=50) - NLL(k=5) = -0.890 ± 0.020 (SE examples) ± 0.010 (SE seeds, 3 seeds)" in text
    assert "Evaluated with k = 5000 on n = 10000 test images" in text


def test_a_table_without_its_claims_file_is_not_rendered(tmp_path):
    write_table1(tmp_path)
    (tmp_path / "table1_claims.csv").unlink()
    assert render_record(tmp_path) == {}


def record_folders() -> list[Path]:
    """Every folder of docs/results that holds a table's CSV (the frontier's folder holds none)."""
    return sorted(p.parent for name in ("table1.csv", "table2.csv") for p in RECORDS.glob(f"*/{name}"))


@pytest.mark.parametrize("folder", sorted(set(record_folders())))
def test_the_committed_markdown_is_what_its_csvs_give(folder: Path):
    made = render_record(folder)
    assert made, f"{folder} holds no table of record (its CSVs and claims CSVs)"
    for name, text in made.items():
        assert (folder / name).read_text() == text, f"{folder / name}: run scripts/record_results.py --render-only"


@pytest.mark.skipif(not (RECORDS / "frontier" / "frontier_final.csv").is_file(), reason="no frontier of record yet")
def test_the_frontier_of_record_markdown_is_what_its_csv_gives():
    from iwae_cli.reports.frontier import final_markdown

    folder = RECORDS / "frontier"
    assert (folder / "frontier_final.md").read_text() == final_markdown(pd.read_csv(folder / "frontier_final.csv"))
