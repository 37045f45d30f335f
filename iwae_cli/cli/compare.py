"""`iwae compare TABLE [--record RECORD]`: a rerun's table1.csv or table2.csv beside the table of record.

The tables of record are committed under docs/results/<profile>/ in the repository (docs/results.md); a table
command writes to <output_root>/tables/<profile>/, so the folder a table sits in names the record to compare it
with. Exit code 0 when every compared cell is within the seed noise, 1 when one differs (as `diff`), 2 for a
mistake (no such table, no record) or when no cell could be compared (each row says why).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from iwae_cli.errors import ConfigError

RECORDS = Path("docs") / "results"  # in the repository, beside the package


def compare_command(table: Path, record: Path | None, level: float) -> int:
    """Print the comparison of `table` with `record` (default: the record of the table's profile); the exit code."""
    from iwae_cli.reports.tables.compare import compare_tables, comparison_text, read_table

    if not (math.isfinite(level) and 0 < level < 1):
        raise ConfigError(f"--level must be a probability between 0 and 1, e.g. --level 0.05, got {level:g}")
    read_table(table)  # yours first: a mistaken path is named as such, not as a missing record
    record = record or default_record(table)
    comparison = compare_tables(table, record, level)
    typer.echo(comparison_text(comparison, table, record, level))
    if not comparison.compared:
        typer.echo(f"error: no cell of {table} could be compared with {record}: the why column says why", err=True)
        return 2
    return 1 if comparison.differing else 0


def default_record(table: Path) -> Path:
    """docs/results/<profile>/<table's file name>, <profile> being the folder the table was written to: looked
    for under the working directory, then in the repository this package runs from."""
    profile = table.absolute().parent.name
    roots = (Path.cwd(), Path(__file__).resolve().parents[2])  # the repository this package runs from
    candidates = [root / RECORDS / profile / table.name for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = sorted({p.name for root in roots if (root / RECORDS).is_dir()
                    for p in (root / RECORDS).iterdir() if p.is_dir()})
    raise ConfigError(
        f"no table of record for profile {profile!r} (looked for {candidates[0]}); records exist for "
        f"{', '.join(known) or 'no profile here'}: give one with --record docs/results/<profile>/{table.name}"
    )
