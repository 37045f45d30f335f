"""A user's table beside a table of record (`iwae compare`): which cells differ by more than the seed noise.

Each cell's NLL is a mean over seeds, and a seed's NLL varies from seed to seed with some standard deviation s
(training noise; the tables' `nll_seed_std`). Two means, over n_yours and n_record seeds, differ by chance with
standard error s * sqrt(1/n_yours + 1/n_record). s is estimated from few seeds (3 in a table of record: two
degrees of freedom), so the threshold is Student's t, not the normal's 2: a two-sided test at `level` with the
seeds' pooled variance (the record's alone where your table has one seed). A cell differs when |yours - record|
exceeds t * s * sqrt(1/n_yours + 1/n_record); at level 0.05, about one cell in twenty of a faithful rerun does
by chance. The error over test examples is left out on purpose: both tables score the same 10,000 test images
with k=5000, where it is a few hundredths of a nat and mostly shared. Cells made differently (another
schedule, number of passes, k, n or split) are not compared, and say why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from iwae_cli.errors import ConfigError

# How each table names its cells; Table 2's cells are its experiments' two stages.
CELL_KEYS = {"table1": ("dataset", "layers", "k", "objective"), "table2": ("experiment", "stage")}
# Settings both tables must share for a cell's NLLs to compare.
SAME_SETTINGS = ("schedule", "protocol", "passes", "eval_k", "eval_n", "eval_split")
READ = ("nll", "nll_seed_std", "seeds", "status", *SAME_SETTINGS)  # every column a comparison reads
COMPARED = ("differs", "within noise")
COLUMNS = ("yours", "record", "difference", "threshold", "verdict", "why")


@dataclass(frozen=True)
class Comparison:
    """The cells (one row each, the record's and any of yours it lacks) and the verdicts."""

    cells: pd.DataFrame

    @property
    def differing(self) -> int:
        return int((self.cells.verdict == "differs").sum())

    @property
    def compared(self) -> int:
        return int(self.cells.verdict.isin(COMPARED).sum())


def read_table(path: Path) -> tuple[str, pd.DataFrame]:
    """A table CSV written by `iwae table1` or `iwae table2`: its kind and one row per cell (Table 2 stacked by
    stage), with every column a comparison reads (empty where the file has none). ConfigError naming the file
    where it is neither table."""
    if not path.is_file():
        raise ConfigError(f"no table at {path}: give the table1.csv or table2.csv a table command wrote")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not a table CSV ({type(e).__name__}): give a table1.csv or table2.csv") from None
    if set(CELL_KEYS["table1"]) <= set(df.columns):
        kind = "table1"
    elif "experiment" in df.columns and "second_nll" in df.columns:
        kind, df = "table2", stacked_stages(df)
    else:
        raise ConfigError(f"{path} is neither a table1.csv nor a table2.csv (its columns lack the cells' keys)")
    return kind, df.reindex(columns=[*CELL_KEYS[kind], *READ])


def stacked_stages(df: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as one row per (experiment, stage), its `first_`/`second_` columns under plain names."""
    stages = []
    for stage in ("first", "second"):
        part = df[[c for c in df.columns if c.startswith(f"{stage}_")]].copy()
        part.columns = [c.removeprefix(f"{stage}_") for c in part.columns]
        stages.append(part.assign(experiment=df.experiment, stage=stage))
    return pd.concat(stages, ignore_index=True)


def compare_tables(yours: Path, record: Path, level: float = 0.05) -> Comparison:
    """Every cell of the record beside the same cell of `yours` (and yours the record lacks): the difference,
    the threshold seed noise sets for it at `level`, and the verdict (within noise / differs / not compared)."""
    kind, mine = read_table(yours)
    record_kind, theirs = read_table(record)
    if kind != record_kind:
        raise ConfigError(f"{yours} is a {kind} and {record} a {record_kind}: compare a table with its own record")
    keys = list(CELL_KEYS[kind])
    merged = theirs.merge(mine, on=keys, how="outer", suffixes=("_record", "_yours"), indicator=True, sort=False)
    rows = [{key: row[key] for key in keys} | compare_cell(row, level) for row in merged.to_dict("records")]
    return Comparison(pd.DataFrame(rows, columns=[*keys, *COLUMNS]))


def compare_cell(row: dict, level: float) -> dict:
    """One cell: its two NLLs, their difference, the threshold for it, and the verdict with why."""
    yours, record = row["nll_yours"], row["nll_record"]
    out = {"yours": yours, "record": record, "difference": None, "threshold": None}
    if row["_merge"] == "right_only":
        return out | {"verdict": "not compared", "why": "not in the record"}
    if str(row["status_record"]).startswith("done ("):  # IWAE at k=1: the VAE k=1 model, compared in its own row
        return out | {"verdict": "not compared", "why": f"the record's cell is {str(row['status_record'])[6:-1]}"}
    if row["_merge"] == "left_only" or _missing(yours):
        return out | {"verdict": "not compared", "why": "no NLL in your table"}
    if _missing(record):
        return out | {"verdict": "not compared", "why": "no NLL in the record"}
    settings = [s for s in SAME_SETTINGS if not _same(row[f"{s}_yours"], row[f"{s}_record"])]
    if settings:
        why = ", ".join(f"{s} {row[f'{s}_yours']} (record: {row[f'{s}_record']})" for s in settings)
        return out | {"verdict": "not compared", "why": f"made differently: {why}"}
    out["difference"] = round(float(yours) - float(record), 3)
    n_yours, n_record = _seed_count(row["seeds_yours"]), _seed_count(row["seeds_record"])
    if _missing(row["nll_seed_std_record"]) or n_record < 2:
        return out | {"verdict": "not compared", "why": "the record has one seed: no seed noise to compare with"}
    spread, freedom = pooled_spread(row["nll_seed_std_record"], n_record, row["nll_seed_std_yours"], n_yours)
    threshold = stats.t.ppf(1 - level / 2, freedom) * spread * math.sqrt(1 / n_yours + 1 / n_record)
    verdict = "differs" if abs(out["difference"]) > threshold else "within noise"
    why = f"seeds {n_yours} (yours) and {n_record} (record); seed sd {spread:.3f}, t with {freedom} df"
    return out | {"threshold": round(threshold, 3), "verdict": verdict, "why": why}


def pooled_spread(record_sd: float, n_record: int, your_sd: float, n_yours: int) -> tuple[float, int]:
    """The seed standard deviation and its degrees of freedom: both tables' variances pooled where yours has
    two or more seeds, the record's alone otherwise."""
    if _missing(your_sd) or n_yours < 2:
        return float(record_sd), n_record - 1
    freedom = n_record + n_yours - 2
    variance = ((n_record - 1) * float(record_sd) ** 2 + (n_yours - 1) * float(your_sd) ** 2) / freedom
    return math.sqrt(variance), freedom


def _seed_count(seeds: object) -> int:
    """How many seeds a cell averaged ('0+1+2' -> 3; one seed is written as its number)."""
    return 1 if _missing(seeds) else len(str(seeds).split("+"))


def _same(a: object, b: object) -> bool:
    """Whether two settings read from CSV agree (10000 and 10000.0 do: a column with a gap is read as floats)."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    try:
        return float(a) == float(b)  # type: ignore[arg-type]
    except ValueError:
        return str(a) == str(b)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def comparison_text(comparison: Comparison, yours: Path, record: Path, level: float) -> str:
    """What `iwae compare` prints: the cells, then one line saying how many differ."""
    shown = comparison.cells.astype(object).where(comparison.cells.notna(), "")
    summary = (
        f"{comparison.differing} of {comparison.compared} compared cells differ from the record beyond seed noise "
        f"(two-sided t test at level {level:g}: about {level:.0%} of cells differ by chance; yours: {yours}; "
        f"record: {record})"
    )
    return "\n".join([shown.to_string(index=False), "", summary])
