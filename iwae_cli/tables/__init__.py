"""Tables 1 and 2 of the paper and `table-extra`, rebuilt from our runs with the paper's numbers beside ours.

One module per idea: `sweep` trains the cells a table needs, `results` reads finished runs, `claims` judges the
paper's claims, `render` writes and prints, `outcome` sets the exit code, and one module per table command.
"""

from .claims import NOISE_Z, nll_claim, units_claim, verdict
from .extra import table_extra_task
from .paper import paper_cell, paper_results, total_units
from .results import paired_nll_difference, seed_level_difference
from .table1 import table1_task
from .table2 import table2_task

__all__ = [
    "NOISE_Z",
    "nll_claim",
    "paired_nll_difference",
    "paper_cell",
    "paper_results",
    "seed_level_difference",
    "table1_task",
    "table2_task",
    "table_extra_task",
    "total_units",
    "units_claim",
    "verdict",
]
