"""`iwae runs`: the table of run directories, their state, progress and results (each with the checkpoint it
came from: stale or unfinished results are marked), the filters it selects by and the columns it sorts by (also
what `iwae runs --remove` removes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iwae_cli.core.provenance import result_note
from iwae_cli.errors import ConfigError
from iwae_cli.runs.records import METRICS_NAME, STATES, find_runs, read_json, run_state_with_lock

# `iwae runs`: the columns it prints (the run's name carries its dataset, layers, objective, k and seed), the run
# settings it filters by (key=value) and the columns it sorts by
COLUMNS = ("run", "state", "passes", "test_nll", "units", "note", "made")
FILTERS = (
    "state", "dataset", "layers", "objective", "k", "seed", "schedule", "protocol", "optim", "loss_reduction"
)
SORTS = ("run", "state", "dataset", "layers", "objective", "k", "seed", "passes", "test_nll", "units", "made")
# the results whose provenance the note column reports, by the short name it gives them
NOTED = (("nll", "test_nll"), ("units", "active_units"))


def describe_runs(
    output_root: Path, where: dict[str, list[str]] | None = None, sort: list[str] | None = None
) -> str:
    """A table of the runs under output_root/runs that `select_runs` keeps: configuration, state, progress and
    results (or a line saying that none matched)."""
    import pandas as pd

    kept, total = select_runs(output_root, where, sort)
    if not kept:
        return no_runs_line(output_root, where, total)
    table = [{column: _shown(row, column) for column in COLUMNS} for row in kept]
    return pd.DataFrame(table, dtype=object).to_string(index=False)


def select_runs(
    output_root: Path, where: dict[str, list[str]] | None = None, sort: list[str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The rows (run_row) of the runs under output_root/runs whose setting is one of where[setting]'s values,
    ordered by the `sort` columns ("-k": descending), then by path; and how many runs there are in all. What
    `iwae runs` lists, and what `iwae runs --remove` removes.

    Numbers sort as numbers, and a run without the value (no test NLL yet) goes last either way."""
    where, sort = where or {}, sort or []
    for key, values in where.items():
        if key not in FILTERS:
            raise ConfigError(
                f"iwae runs cannot filter by {key}: filter by {', '.join(FILTERS)} (key=a,b: a or b)"
            )
        if not values:
            raise ConfigError(f"{key}= needs a value (several: {key}=a,b)")
        unknown = [v for v in values if key == "state" and v not in STATES]
        if unknown:
            raise ConfigError(f"state={unknown[0]} is no state of a run: choose {', '.join(STATES)}")
    for key in sort:
        if key.removeprefix("-") not in SORTS:
            raise ConfigError(
                f"iwae runs cannot sort by {key.removeprefix('-')}: sort by {', '.join(SORTS)} "
                "(sort=a,b: by a, then b; sort=-a: descending)"
            )
    root = Path(output_root) / "runs"
    rows = [run_row(path, root) for path in find_runs(root)]
    kept = [row for row in rows if all(_text(row.get(key)) in values for key, values in where.items())]
    for key in reversed(sort):
        column, descending = key.removeprefix("-"), key.startswith("-")
        present = [r for r in kept if r[column] is not None]
        present.sort(key=lambda r, column=column: _order(r[column]), reverse=descending)
        kept = present + [r for r in kept if r[column] is None]
    return kept, len(rows)


def no_runs_line(output_root: Path, where: dict[str, list[str]] | None, total: int) -> str:
    """What `iwae runs` says when no run matches: where it looked, the filters, and how many runs there are."""
    chosen = " ".join(f"{key}={','.join(values)}" for key, values in (where or {}).items())
    root = Path(output_root) / "runs"
    return f"no runs under {root}" + (f" with {chosen} ({total} runs in all)" if total else "")


def run_row(path: Path, root: Path) -> dict[str, Any]:
    """One run's values, unformatted (None where it has none): COLUMNS, the settings FILTERS names, and the
    test NLL's standard error, k and n and the unit label for display. `note` says which results are not the
    finished model's (core/provenance.py: stale, unfinished, or made by older code: "passes ?")."""
    metrics = read_json(path / METRICS_NAME)
    summary = metrics.get("run", {})
    nll = metrics.get("test_nll") or {}
    units = metrics.get("active_units") or {}
    state = run_state_with_lock(path)  # the lock also sees owners on other hosts
    passes = metrics.get("train", {}).get("passes_done", _passes_from_log(path))
    return {
        **{key: summary.get(key) for key in FILTERS},
        "run": str(path.relative_to(root)),
        "state": state,
        "passes": passes,
        "test_nll": nll.get("nll"),
        "test_nll_se": nll.get("standard_error"),
        "test_nll_k": nll.get("k"),
        "test_nll_n": nll.get("n"),
        "units": sum(units["counts"]) if "counts" in units else None,
        "units_label": units.get("label", ""),
        "note": provenance_note(metrics, passes, state == "done"),
        # runs made before identities came from the typed spec (version 1) record no identity version
        "made": f"v{summary.get('identity', 1)}" if summary else None,
    }


def provenance_note(metrics: dict[str, Any], passes: int | None, finished: bool) -> str | None:
    """'nll+units: stale, passes 3'-style text naming the results that are not the finished model's (None: all
    are, or there are none)."""
    notes: dict[str, list[str]] = {}
    for short, key in NOTED:
        note = result_note(metrics.get(key), passes, finished)
        if note:
            notes.setdefault(note, []).append(short)
    return "; ".join(f"{'+'.join(names)}: {note}" for note, names in notes.items()) or None


def _shown(row: dict[str, Any], column: str) -> str:
    """A column's value as `iwae runs` prints it: the test NLL as '84.95±0.05 @k5000 n=10000'."""
    if column == "test_nll":
        if row["test_nll"] is None:
            return ""
        made = "" if row["test_nll_k"] is None else f" @k{row['test_nll_k']} n={row['test_nll_n']}"
        return f"{row['test_nll']:.2f}±{row['test_nll_se']:.2f}{made}"
    if column == "units":
        return row["units_label"]
    return _text(row[column])


def _order(value: Any) -> tuple[int, float, str]:
    """A sort key that orders numbers as numbers and puts them before text (never comparing the two)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 0, float(value), ""
    return 1, 0.0, str(value)


def _text(value: Any) -> str:
    """A setting as the user writes it on the command line (None: empty)."""
    return "" if value is None else str(value)


def _passes_from_log(run_dir: Path) -> int:
    """Passes completed so far, from the per-epoch log (for runs still in progress)."""
    log = run_dir / "train_log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.exists() else 0
