"""Naming a run on the command line: `run=` takes a run directory, a path relative to the output root, or the
run's name as `iwae runs` prints it (relative to <output_root>/runs); without one, the latest trained run."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from iwae_cli.errors import RunError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.records import CONFIG_NAME, find_runs

CANDIDATES = 5  # the most names an unknown run= lists


def runs_root(output_root: str | os.PathLike) -> Path:
    """Where the runs live: <output_root>/runs."""
    return Path(output_root) / "runs"


def run_name(run_dir: Path, output_root: str | os.PathLike) -> str:
    """A run's name as `iwae runs` prints it and run= takes it: its path relative to <output_root>/runs."""
    return str(Path(run_dir).relative_to(runs_root(output_root)))


def latest_run(root: Path) -> Path:
    """The run under root whose checkpoint was written last."""
    candidates = [p for p in find_runs(root) if (p / CHECKPOINT_NAME).exists()]
    if not candidates:
        raise RunError(
            f"no trained runs under {root}: train one (iwae train ...) or pass run=<a run directory>"
        )
    return max(candidates, key=lambda p: (p / CHECKPOINT_NAME).stat().st_mtime)


def resolve_run_dir(run: str | os.PathLike | None, output_root: str | os.PathLike) -> Path:
    """The run directory named by `run=` (or the latest run), checked to hold a config and a checkpoint.

    `run` is looked up as a directory (absolute, or relative to the working directory), relative to the output
    root, and as a name under <output_root>/runs; where these find different runs, or none, one line lists
    the candidates."""
    if run in (None, ""):
        path = latest_run(runs_root(output_root))
    else:
        path = _named_run(str(run), Path(output_root))
    if not (path / CONFIG_NAME).exists() or not (path / CHECKPOINT_NAME).exists():
        raise RunError(
            f"{path} has no config.yaml and checkpoint.pt; it is not a trained run (see `iwae runs`)"
        )
    return path


def _named_run(run: str, output_root: Path) -> Path:
    """The one directory that `run` names (see resolve_run_dir), or a RunError listing the candidates."""
    given = Path(run).expanduser()
    places = [given] if given.is_absolute() else [given, output_root / given, runs_root(output_root) / given]
    found = list(dict.fromkeys(p.resolve() for p in places if p.is_dir()))
    if len(found) == 1:
        return found[0]
    if found:
        raise RunError(f"run={run} is ambiguous: it names {' and '.join(map(str, found))}; pass one of them")
    names = [run_name(p, output_root) for p in find_runs(runs_root(output_root))]
    close = [n for n in names if run in n] or difflib.get_close_matches(run, names, n=CANDIDATES, cutoff=0.5)
    hint = f"did you mean {', '.join(close[:CANDIDATES])}?" if close else "list the runs with `iwae runs`"
    raise RunError(f"run={run} does not exist (not a directory, nor a run under {runs_root(output_root)}); {hint}")
