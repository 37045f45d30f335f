"""The evaluation of a finished run that a table's cell (or `iwae train evaluate=true`) needs: the test NLL, both
active-unit estimates and, where asked, the NLL of the model pruned to its active units. Each is computed only
where metrics.json lacks it or holds it for other settings, so re-running a table command on old runs fills in
just the new metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from iwae_cli.core.activity import AU_ENTRIES, recorded_matches
from iwae_cli.core.estimators import NLLEstimate
from iwae_cli.core.model import IWAEModel
from iwae_cli.core.provenance import checkpoint_record, made_from
from iwae_cli.evaluation.active_units import record_active_units
from iwae_cli.evaluation.nll import record_nll
from iwae_cli.evaluation.spec import EvalSpec

log = logging.getLogger(__name__)


def evaluate_finished_run(
    run_dir: Path, model: IWAEModel, metrics: dict[str, Any], spec: EvalSpec, passes: int | None = None
) -> None:
    """Record what `spec` asks for and metrics.json does not hold yet for the finished model, trained for
    `passes` (None: as metrics.json's train section says); see the module's docstring. A result of another
    checkpoint (core/provenance.py) is computed again."""
    if passes is None:
        passes = (metrics.get("train") or {}).get("passes_done")
    made = made_from(passes, True, next(model.parameters()).device)
    finished = {"checkpoint": checkpoint_record(passes, True)}
    split, wanted = spec.nll.split, {**spec.nll.recorded_as(), **finished}
    if not recorded_matches(metrics.get(f"{split}_nll"), wanted):
        estimate, metrics = record_nll(run_dir, model, spec.data, spec.nll, made)
        log_nll(f"{split} NLL", estimate, passes)
    missing = tuple(
        n for n in AU_ENTRIES if not recorded_matches(metrics.get(n), {**spec.activity.recorded_as(n), **finished})
    )
    if missing:
        entries, metrics = record_active_units(run_dir, model, spec.data, spec.activity, made, missing)
        for name, entry in entries.items():
            log.info("%s %s (%s), model after %s passes", name.replace("_", " "), entry["label"], entry["rule"], passes)
    if not spec.prune_inactive:
        return
    active = metrics["active_units"]
    pruned = {**wanted, **{key: active.get(key, False) for key in ("label", "threshold", "inclusive")}}
    if not recorded_matches(metrics.get(f"{split}_nll_pruned"), pruned):
        estimate, _ = record_nll(run_dir, model, spec.data, spec.nll, made, active)
        log_nll(f"{split} NLL pruned to {active['label']}", estimate, passes)


def log_nll(what: str, estimate: NLLEstimate, passes: int | None) -> None:
    log.info(
        "%s %.2f +- %.2f (k=%d, n=%d), model after %s passes",
        what, estimate.nll, estimate.standard_error, estimate.k, estimate.n, passes,
    )
