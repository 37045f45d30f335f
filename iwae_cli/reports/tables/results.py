"""Reading finished runs for the tables: which run belongs to which cell, its numbers, and paired differences.

Every number comes from a run directory's metrics.json (written atomically at the end of each stage of work)
and its per-example test log-likelihoods (for differences paired over the same binarised test examples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iwae_cli.core.provenance import result_note
from iwae_cli.reports.tables.paper import total_units
from iwae_cli.runs.lock import lock_owner
from iwae_cli.runs.records import find_runs, read_json, run_state, run_state_with_lock


@dataclass(frozen=True)
class CellKey:
    dataset: str
    layers: int
    objective: str
    k: int
    seed: int


@dataclass(frozen=True)
class RunFilter:
    """What a table's runs have in common: trained on this schedule, protocol, optimiser and loss scale."""

    schedule: str
    protocol: str
    optim: str
    loss_reduction: str
    parent: str | None = None

    def admits(self, run: dict[str, Any]) -> bool:
        """Whether a run's summary (metrics.json's "run") matches."""
        return (
            run.get("schedule") == self.schedule
            and run.get("protocol") == self.protocol
            and run.get("optim") == self.optim
            and run.get("loss_reduction") == self.loss_reduction
            and run.get("parent") == self.parent
        )


def collect_runs(output_root: Path, wanted: RunFilter) -> dict[CellKey, Path]:
    """Run directories under output_root/runs that `wanted` admits, keyed by their cell."""
    return runs_by_schedule(output_root, wanted, any_schedule=False).get(wanted.schedule, {})


def runs_by_schedule(output_root: Path, wanted: RunFilter, any_schedule: bool = True) -> dict[str, dict[CellKey, Path]]:
    """Run directories under output_root/runs that `wanted` admits, by schedule and cell; with `any_schedule`,
    those of every schedule that `wanted` admits in all else (the same cells trained for shorter or longer)."""
    found: dict[str, dict[CellKey, Path]] = {}
    for path in find_runs(Path(output_root) / "runs"):
        run = read_json(path / "metrics.json").get("run", {})
        judge = replace(wanted, schedule=run.get("schedule")) if any_schedule else wanted
        if judge.admits(run):
            key = CellKey(run["dataset"], run["layers"], run["objective"], run["k"], run["seed"])
            found.setdefault(run["schedule"], {})[key] = path
    return found


def per_example_log_likelihoods(run_dir: Path) -> torch.Tensor | None:
    """The per-example test L_k values saved by eval-nll, or None."""
    path = run_dir / "log_likelihoods_test.pt"
    if not path.exists():
        return None
    return torch.load(path, weights_only=True)["log_likelihoods"]


def paired_nll_difference(a: list[Path], b: list[Path]) -> tuple[float, float] | None:
    """NLL(a) - NLL(b) over the same test examples, with its standard error (per-example values averaged over
    each side's seeds first). None when either side was not evaluated on the same examples."""
    values = []
    for runs in (a, b):
        lls = [per_example_log_likelihoods(r) for r in runs]
        if not lls or any(v is None for v in lls) or len({len(v) for v in lls}) != 1:
            return None
        values.append(torch.stack(lls).mean(0))
    if len(values[0]) != len(values[1]):
        return None
    diff = values[1] - values[0]  # -(L_a) - -(L_b)
    return float(diff.mean()), float(diff.std(unbiased=True) / math.sqrt(len(diff)))


def nll_by_seed(runs: list[Path]) -> dict[int, float]:
    """Each evaluated run's test NLL (its finished model's), keyed by its seed."""
    out = {}
    for r in runs:
        metrics = read_json(r / "metrics.json")
        if current(metrics, "test_nll"):
            out[metrics["run"]["seed"]] = metrics["test_nll"]["nll"]
    return out


def units_by_seed(runs: list[Path]) -> dict[int, int]:
    """Each run's total active units (all layers), keyed by its seed; runs without a count are left out."""
    out = {}
    for r in runs:
        metrics = read_json(r / "metrics.json")
        units = total_units(metrics["active_units"]["label"]) if current(metrics, "active_units") else None
        if units is not None:
            out[metrics["run"]["seed"]] = units
    return out


def seed_paired_difference(va: dict[int, float], vb: dict[int, float]) -> tuple[float, float | None, int] | None:
    """Mean over the seeds both sides have of va[seed] - vb[seed], its standard error over seeds (None for one
    seed) and the number of seeds; None when they share no seed."""
    diffs = [va[s] - vb[s] for s in va if s in vb]
    if not diffs:
        return None
    series = pd.Series(diffs)
    se = float(series.std() / math.sqrt(len(diffs))) if len(diffs) > 1 else None
    return float(series.mean()), se, len(diffs)


def seed_level_difference(a: list[Path], b: list[Path]) -> tuple[float, float, int] | None:
    """Mean over seeds of NLL(a, seed) - NLL(b, seed), its standard error over seeds and the number of seeds
    (paired by seed; None for fewer than 2 seeds in common): the training noise the example SE leaves out."""
    paired = seed_paired_difference(nll_by_seed(a), nll_by_seed(b))
    return paired if paired and paired[1] is not None else None


def cell_summary(runs: list[Path]) -> dict[str, Any]:
    """NLL (mean over seeds), its standard error, units and training facts of one cell's runs, with where the
    NLL came from (provenance_columns). Results of another checkpoint than the finished model's are left out."""
    # in seed order, so the per-seed columns read against `seeds`
    pairs = sorted(((read_json(r / "metrics.json"), r) for r in runs), key=lambda p: p[0].get("run", {}).get("seed", 0))
    metrics, runs = [m for m, _ in pairs], [r for _, r in pairs]
    nlls = [m["test_nll"] for m in metrics if current(m, "test_nll")]
    summary: dict[str, Any] = {
        "seeds": "+".join(str(m["run"]["seed"]) for m in metrics),
        "passes": min((m.get("train", {}).get("passes_done", 0) for m in metrics), default=0),
        "train_seconds": sum(m.get("train", {}).get("seconds", 0.0) for m in metrics),
        "run_dir": ";".join(str(r) for r in runs),
    }
    if nlls:
        mean = sum(n["nll"] for n in nlls) / len(nlls)
        summary.update(
            nll=round(mean, 3),
            nll_se=round(math.sqrt(sum(n["standard_error"] ** 2 for n in nlls)) / len(nlls), 3),
            nll_seed_std=round(pd.Series([n["nll"] for n in nlls]).std(), 3) if len(nlls) > 1 else None,
            nll_per_seed="/".join(f"{n['nll']:.2f}" for n in nlls),
            **provenance_columns(nlls),
        )
    pruned = [m["test_nll_pruned"]["nll"] for m in metrics if current(m, "test_nll_pruned")]
    if pruned and len(pruned) == len(nlls):
        summary["nll_pruned"] = round(sum(pruned) / len(pruned), 3)
    for column, key in (("units", "active_units"), ("units_expected", "active_units_expected")):
        labels = [m[key]["label"] for m in metrics if current(m, key) and "label" in m[key]]
        if labels:
            summary[column] = "/".join(labels)  # one per seed, in seed order
    return summary


def current(metrics: dict[str, Any], key: str) -> bool:
    """Whether metrics.json holds the result `key` of its run's finished model. One made by older code, which
    did not record its checkpoint, is taken as it is (its passes show as '?', provenance_columns)."""
    entry = metrics.get(key)
    if not entry or ("nll" not in entry and "label" not in entry):
        return False
    passes = (metrics.get("train") or {}).get("passes_done")
    return result_note(entry, passes, True) in ("", "passes ?")


# the columns a cell's summary gives where its NLLs came from (provenance_columns)
PROVENANCE_KEYS = (
    "eval_k", "eval_n", "eval_split", "eval_passes", "eval_iwae", "eval_commit", "eval_torch", "eval_device",
    "eval_threads",
)


def provenance_columns(nlls: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a cell's NLLs came from: k, n, split, the passes of the checkpoints ('?' where older code did not
    record them) and the environment (iwae version and commit, torch, device, threads); a value that differs
    between seeds lists each seed's, '/'-separated."""
    checkpoints = [n.get("checkpoint") or {} for n in nlls]
    environments = [n.get("environment") or {} for n in nlls]
    return {
        "eval_k": nlls[0]["k"],
        "eval_n": nlls[0]["n"],
        "eval_split": _joined([n.get("split", "test") for n in nlls]),
        "eval_passes": _joined([c.get("passes") for c in checkpoints]),
        "eval_iwae": _joined([e.get("iwae") for e in environments]),
        "eval_commit": _joined([(e.get("commit") or "")[:12] or None for e in environments]),
        "eval_torch": _joined([e.get("torch") for e in environments]),
        "eval_device": _joined([e.get("device") for e in environments]),
        "eval_threads": _joined([e.get("threads") for e in environments]),
    }


def _joined(values: list[Any]) -> str:
    """One value where the seeds agree, else each seed's '/'-separated ('?': not recorded)."""
    shown = ["?" if v is None else str(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else "/".join(shown)


def evaluated(run_dir: Path) -> bool:
    """Finished training and has the finished model's test NLL (not a stale one)."""
    return run_state(run_dir) == "done" and current(read_json(run_dir / "metrics.json"), "test_nll")


def unfinished_status(runs: list[Path], skip_reason: str | None) -> str:
    """Why a cell has no result: its data is missing, another process is training it, its run failed or was
    interrupted (with the message), or it was never launched."""
    if skip_reason:
        return f"not run: {skip_reason}"
    if not runs:
        return "not run"
    owner = lock_owner(runs[0])
    if owner is not None:
        return f"running elsewhere (pid {owner['pid']} on {owner['host']} since {owner['since']})"
    # The lock, not status.json's pid, says whether a run still trains: a sweep's worker process outlives a run
    # it stopped (joblib reuses it for the next job), so the pid a 'running' status names can be alive.
    state = run_state_with_lock(runs[0])
    metrics = read_json(runs[0] / "metrics.json")
    note = result_note(metrics.get("test_nll"), (metrics.get("train") or {}).get("passes_done"), state == "done")
    if note.startswith("stale"):  # a number of another model than the finished one: labelled, never shown
        return f"{state}: test NLL {note} (not the finished model's); evaluate=true evaluates it again"
    reason = f"{state}: {read_json(runs[0] / 'status.json').get('message') or 'not evaluated'}"
    return f"{reason} (its test NLL: {note})" if note.startswith("unfinished") else reason
