"""`iwae runs --remove [--yes] KEY=VALUE ...`: what the command prints; the choosing and deleting is
iwae_cli.runs.removal.

Without --yes it is a dry run: deleting a run loses its training for good, so the user first sees every run the
filters select (its state and directory) and the word that deletes them. Each run that stays (running, or
holding runs that stay) gets one `refused:` line on stderr, and any refusal makes the exit code 1, so a script
notices that not everything went.
"""

from __future__ import annotations

from pathlib import Path

import typer

from iwae_cli.runs.listing import no_runs_line
from iwae_cli.runs.removal import plan_removal, remove_runs


def remove_command(root: Path, where: dict[str, list[str]], sort: list[str] | None, really: bool) -> int:
    """Remove (really=False: list) the runs under root/runs that `iwae runs` lists with `where` and `sort`; the
    exit code."""
    root = root.absolute()  # a deletion names exactly what it deletes
    removals, total = plan_removal(root, where, sort)
    if not removals:
        typer.echo(no_runs_line(root, where, total))
        return 0
    runs_root = root / "runs"
    refused = {r.path: r.refused for r in removals if r.refused is not None}
    if really:
        failed = remove_runs(removals, runs_root)
        refused.update({path: why for path, why in failed.items() if why is not None})
    going = [r for r in removals if r.path not in refused]
    if really:
        for removal in going:
            typer.echo(f"removed {removal.path} ({removal.state})")
    elif going:
        typer.echo(f"would remove {runs(len(going))} under {runs_root} (state, directory):")
        for removal in going:
            typer.echo(f"  {removal.state:<11} {removal.path}")
    for why in refused.values():
        typer.echo(f"refused: {why}", err=True)
    if really:
        typer.echo(f"removed {runs(len(going))} under {runs_root}" + (f"; {len(refused)} refused" if refused else ""))
    elif going:
        them = "it" if len(going) == 1 else "them"
        typer.echo(f"nothing was deleted: run the same command with --yes to delete {them}")
    return 1 if refused else 0


def runs(n: int) -> str:
    """'1 run', '3 runs'."""
    return f"{n} run{'' if n == 1 else 's'}"

