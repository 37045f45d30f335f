"""How a table command ends: exit 0 only when every requested cell has its numbers.

The table files (with the reason for every empty cell) are written first in every case; the exit code then
tells a script or scheduler whether the table is complete.
"""

from __future__ import annotations

from iwae_cli.errors import IwaeError

SOME_CELLS_MISSING = 4  # the table is written, some cells have no numbers (each reason is in the table)
NO_CELLS = 5  # no requested cell could be trained and evaluated


class TableIncomplete(IwaeError):
    """Some or all cells of a written table have no numbers."""


def check_complete(table: str, done: int, total: int, path: str, reasons: list[str]) -> None:
    """Raise TableIncomplete (exit SOME_CELLS_MISSING or NO_CELLS) unless all `total` cells are `done`."""
    if done == total:
        return
    why = "; ".join(dict.fromkeys(r[:120] for r in reasons))
    raise TableIncomplete(
        f"{total - done} of {total} {table} cells have no numbers ({why[:300]}); the table, with each "
        f"reason, is in {path}. Fix the cause and run the command again (finished cells are kept)",
        exit_code=NO_CELLS if done == 0 else SOME_CELLS_MISSING,
    )
