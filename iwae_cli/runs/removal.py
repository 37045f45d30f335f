"""`iwae runs --remove`: the run directories a user no longer wants, deleted whole.

The runs are the ones `iwae runs` lists with the same filters (listing.select_runs). Nothing is deleted unless
asked (a dry run first says what would go), and a run is never deleted under a process that is training it:
a running run (a live lock owner, lock.py) is refused, and each deletion holds the run's lock, so a training
that starts meanwhile is refused in its turn instead of losing its directory. A run directory that holds runs
which stay (Table 2's second stages live inside their first stage's) is refused too: deleting it whole would
take them with it. The folders a deletion leaves empty are removed up to <output_root>/runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from iwae_cli.errors import IwaeError, RunError
from iwae_cli.runs.listing import select_runs
from iwae_cli.runs.lock import busy_message, hold_run_dir, lock_owner
from iwae_cli.runs.records import find_runs


@dataclass(frozen=True)
class Removal:
    """One selected run: its directory, its state (as `iwae runs` shows it) and why it stays, if it does."""

    path: Path
    state: str
    refused: str | None = None


def plan_removal(
    output_root: Path, where: dict[str, list[str]], sort: list[str] | None = None
) -> tuple[list[Removal], int]:
    """The runs `iwae runs` would list with these filters, each with the reason it cannot be removed (if any), in
    the listing's order; and how many runs there are in all."""
    rows, total = select_runs(output_root, where, sort)
    root = Path(output_root) / "runs"
    states = {root / row["run"]: str(row["state"]) for row in rows}
    removals: dict[Path, Removal] = {}
    # nested runs first, so that a run's verdict can count the runs inside it that stay
    for path in sorted(states, key=lambda p: len(p.parts), reverse=True):
        staying = [
            inner for inner in find_runs(path)
            if inner != path and (inner not in removals or removals[inner].refused)
        ]
        removals[path] = Removal(path, states[path], refusal(path, states[path], staying))
    return [removals[path] for path in states], total


def refusal(path: Path, state: str, staying: list[Path]) -> str | None:
    """Why `path` cannot be removed now: a process is training it, or it holds runs that stay; else None."""
    if state == "running":
        owner = lock_owner(path)
        if owner is not None:
            return busy_message(path, owner)
        return f"{path} is running (its status.json says so): wait for it to finish or stop it"
    if staying:
        inner = ", ".join(str(p.relative_to(path)) for p in staying)
        return f"{path} holds other runs that would be deleted with it ({inner}): remove those first"
    return None


def remove_runs(removals: list[Removal], runs_root: Path) -> dict[Path, str | None]:
    """Delete the run of every removal not refused, nested runs before the runs holding them (and not those
    holding one that could not go after all); for each, why it could not be deleted (None: deleted)."""
    outcome: dict[Path, str | None] = {}
    for removal in sorted(removals, key=lambda r: len(r.path.parts), reverse=True):
        if removal.refused is not None:
            continue
        staying = [path for path, why in outcome.items() if why is not None and removal.path in path.parents]
        outcome[removal.path] = refusal(removal.path, removal.state, staying)
        if outcome[removal.path] is None:
            try:
                remove_run(removal.path, runs_root)
            except IwaeError as e:  # its lock taken by a training meanwhile, or the directory not writable
                outcome[removal.path] = str(e)
    return outcome


def remove_run(path: Path, runs_root: Path) -> None:
    """Delete the run directory `path` whole while holding its lock (RunError if a process holds it, or if it
    cannot be deleted), then the folders this leaves empty up to `runs_root`."""
    try:
        with hold_run_dir(path):
            shutil.rmtree(path)
    except OSError as e:
        raise RunError(f"could not remove {path}: {e.strerror or e}; check its permissions") from None
    for parent in path.parents:
        if parent == runs_root or runs_root not in parent.parents:
            break
        try:
            parent.rmdir()  # only an empty folder: the first that is not ends the walk
        except OSError:
            break
