"""How a table command replaces its files: the table, its claims and its figures together, only once all of
them are made, and never an earlier table that has numbers by one that has none.

Every file of a table is made in a staging folder and then moved over its namesake (core/atomic.py
replaced_together), so a failure while they are made (a figure that cannot be drawn, Ctrl-C, a full disk)
leaves the earlier set as it was, and a finished set never mixes two commands' files. A table in which no cell
has numbers (every run failed, the data is missing) is written only where no earlier table with numbers would
be lost: otherwise the command keeps it and says why it has nothing to put in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from iwae_cli.core.atomic import replaced_together
from iwae_cli.reports.tables.outcome import NO_CELLS, TableIncomplete

# Each table's files, relative to its folder, the CSV last: a reader that sees the new CSV sees the rest too.
TABLE1_FILES = (
    "nll_vs_paper.png", "learning_curves.png", "samples.png", "nll_vs_passes.png", "table1_claims.csv",
    "table1.md", "table1.csv",
)
TABLE2_FILES = ("table2_claims.csv", "table2.md", "table2.csv")
EXTRA_FILES = (
    "extra/nll_vs_paper.png", "extra/learning_curves.png", "extra/samples.png", "table_extra.md", "table_extra.csv"
)


def publish(out_dir: Path, files: tuple[str, ...], table: str, statuses: pd.Series, write: Callable[[Path], None]
            ) -> None:
    """Replace the table in `out_dir` (`files`, the CSV last) by the files `write(folder)` makes in a staging
    folder. `statuses`: each cell's status ("done..." where it has numbers). Where no cell has numbers and the
    earlier table has some, nothing is written: TableIncomplete (exit NO_CELLS) says so."""
    csv = out_dir / files[-1]
    if not statuses.str.startswith("done").any() and has_numbers(csv):
        why = "; ".join(dict.fromkeys(statuses.astype(str)))
        raise TableIncomplete(
            f"no {table} cell has numbers ({why[:300]}), so the earlier table in {csv} (and its .md and figures) "
            "is kept. Fix the cause and run the command again (finished cells are kept)",
            exit_code=NO_CELLS,
        )
    with replaced_together(out_dir, files) as stage:
        write(stage)


def has_numbers(csv: Path) -> bool:
    """Whether the table CSV at `csv` exists and has a cell with numbers (a status starting with "done")."""
    try:
        statuses = pd.read_csv(csv).get("status")
    except (OSError, ValueError):
        return False
    return statuses is not None and statuses.astype(str).str.startswith("done").any()
