"""`iwae compare`: a rerun's table beside the table of record, cell by cell, judged against the record's seed noise."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from iwae_cli.errors import ConfigError
from iwae_cli.reports.tables.compare import compare_tables

SETTINGS = {"schedule": "fast", "protocol": "text", "eval_k": 5000, "eval_n": 10000, "eval_split": "test"}


def table1(path: Path, cells: dict[tuple[int, int, str], tuple[float | None, float | None, str]], **settings) -> Path:
    """A table1.csv as `iwae table1` writes it, with the columns compare reads: (layers, k, objective) ->
    (nll, nll_seed_std, seeds)."""
    rows = [
        {"dataset": "mnist", "layers": depth, "k": k, "objective": o, "nll": nll, "nll_seed_std": sd, "seeds": seeds}
        | SETTINGS | settings
        for (depth, k, o), (nll, sd, seeds) in cells.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


RECORD = {(1, 50, "iwae"): (88.0, 0.10, "0+1+2"), (1, 50, "vae"): (89.0, 0.20, "0+1+2")}


def test_a_cell_differs_only_beyond_students_t_of_the_seed_noise(tmp_path):
    record = table1(tmp_path / "record" / "table1.csv", RECORD)
    # one seed of yours against the record's three: the record's sd alone, t with 2 degrees of freedom (4.303),
    # times sqrt(1/1 + 1/3); for the IWAE cell 4.303 * 0.1 * 1.1547 = 0.497
    yours = table1(tmp_path / "fast" / "table1.csv", {(1, 50, "iwae"): (88.6, None, "0"), (1, 50, "vae"): (89.4, None, "0")})
    cells = compare_tables(yours, record).cells.set_index("objective")
    assert cells.loc["iwae", "threshold"] == pytest.approx(4.303 * 0.1 * math.sqrt(1 + 1 / 3), abs=2e-3)
    assert cells.loc["iwae", "verdict"] == "differs" and cells.loc["iwae", "difference"] == pytest.approx(0.6)
    assert cells.loc["vae", "verdict"] == "within noise"  # 0.4 < 4.303 * 0.2 * 1.1547
    # three seeds of yours: both variances pooled, 4 degrees of freedom (t = 2.776)
    three = table1(tmp_path / "three" / "table1.csv", {(1, 50, "vae"): (89.4, 0.1, "0+1+2")})
    cells = compare_tables(three, record).cells.set_index("objective")
    pooled = math.sqrt((0.2**2 + 0.1**2) / 2)
    assert cells.loc["vae", "threshold"] == pytest.approx(2.776 * pooled * math.sqrt(2 / 3), abs=2e-3)
    assert cells.loc["vae", "verdict"] == "differs"  # 0.4 > 0.359
    assert cells.loc["iwae", "verdict"] == "not compared" and cells.loc["iwae", "why"] == "no NLL in your table"
    # the level sets the threshold: at 0.5 the VAE's one-seed 0.4 above the record differs too
    cells = compare_tables(yours, record, level=0.5).cells.set_index("objective")
    assert cells.loc["vae", "verdict"] == "differs"


def test_cells_only_one_table_has_and_the_shared_k1_cell_are_listed_not_compared(tmp_path):
    record_cells = {**RECORD, (1, 1, "vae"): (92.0, 0.1, "0+1+2"), (1, 1, "iwae"): (92.0, 0.1, "0+1+2")}
    record = table1(tmp_path / "record" / "table1.csv", record_cells)
    frame = pd.read_csv(record)
    frame["status"] = ["done", "done", "done", "done (the VAE k=1 model)"]
    frame.to_csv(record, index=False)
    yours = table1(tmp_path / "fast" / "table1.csv", {**record_cells, (2, 5, "iwae"): (90.0, 0.1, "0+1+2")})
    comparison = compare_tables(yours, record)
    cells = comparison.cells.set_index(["layers", "k", "objective"])
    assert cells.loc[(1, 1, "iwae"), "why"] == "the record's cell is the VAE k=1 model"
    assert cells.loc[(2, 5, "iwae"), "why"] == "not in the record"
    assert comparison.compared == 3 and comparison.differing == 0


def test_cells_made_differently_are_not_compared(tmp_path):
    record = table1(tmp_path / "record" / "table1.csv", RECORD)
    yours = table1(tmp_path / "quick" / "table1.csv", RECORD, eval_n=500, schedule="quick")
    cells = compare_tables(yours, record).cells
    assert (cells.verdict == "not compared").all()
    assert cells.why.iloc[0] == "made differently: schedule quick (record: fast), eval_n 500 (record: 10000)"
    # a table whose CSV has no schedule column (Table 2's) is told apart by its passes
    passes = table1(tmp_path / "p" / "table1.csv", RECORD, passes=40)
    record_passes = table1(tmp_path / "rp" / "table1.csv", RECORD, passes=90)
    assert compare_tables(passes, record_passes).cells.why.str.startswith("made differently: passes 40").all()


def test_table2_compares_each_stage(tmp_path):
    def write(path: Path, second: float) -> Path:
        row = {"experiment": 1, "status": "done"}
        for stage, nll in (("first", 92.0), ("second", second)):
            row |= {f"{stage}_nll": nll, f"{stage}_nll_seed_std": 0.05, f"{stage}_seeds": "0+1+2"}
            row |= {f"{stage}_{key}": value for key, value in SETTINGS.items() if key != "schedule"}
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row]).to_csv(path, index=False)
        return path

    cells = compare_tables(write(tmp_path / "a" / "table2.csv", 89.5), write(tmp_path / "b" / "table2.csv", 89.2)).cells
    assert list(cells.stage) == ["first", "second"]
    assert list(cells.verdict) == ["within noise", "differs"]  # 0.3 > 2.776 * 0.05 * sqrt(2/3)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no table at"),
    ("a,b\n1,2\n", "is neither a table1.csv nor a table2.csv"),
])
def test_a_file_that_is_no_table_is_one_line(tmp_path, content, message):
    path = tmp_path / "table1.csv"
    if content is not None:
        path.write_text(content)
    record = table1(tmp_path / "record" / "table1.csv", RECORD)
    with pytest.raises(ConfigError, match=message):
        compare_tables(path, record)


def iwae(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iwae_cli", "compare", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_the_command_exits_1_when_a_cell_differs_and_finds_the_record_by_profile(tmp_path):
    table1(tmp_path / "docs" / "results" / "fast" / "table1.csv", RECORD)
    same = table1(tmp_path / "outputs" / "tables" / "fast" / "table1.csv", RECORD)
    result = iwae(str(same), cwd=tmp_path)  # the record: docs/results/fast/table1.csv under the working directory
    assert result.returncode == 0, result.stderr
    assert "0 of 2 compared cells differ" in result.stdout
    moved = table1(tmp_path / "mine" / "table1.csv", {**RECORD, (1, 50, "iwae"): (87.0, 0.1, "0+1+2")})
    result = iwae(str(moved), "--record", "docs/results/fast/table1.csv", "--level", "1.5", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: --level must be a probability")
    result = iwae(str(moved), "--record", "docs/results/fast/table1.csv", cwd=tmp_path)
    assert result.returncode == 1 and "1 of 2 compared cells differ" in result.stdout
    result = iwae(str(moved), cwd=tmp_path)  # profile "mine" has no record
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: no table of record for profile 'mine'") and "fast" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # nothing comparable (another profile's table given as the record): the rows say why, and the exit code is 2
    other = table1(tmp_path / "quick" / "table1.csv", RECORD, schedule="quick")
    result = iwae(str(other), "--record", "docs/results/fast/table1.csv", cwd=tmp_path)
    assert result.returncode == 2 and "made differently: schedule quick (record: fast)" in result.stdout
    assert result.stderr.startswith("error: no cell of")
