"""Scoring a run's snapshots (runs/snapshots.py) on validation images: the points of a time-to-quality curve.

Each snapshot's NLL (-L_k on the first n validation images, binarisation and noise seeded) is kept in the run's
frontier.json with the k, n and seed it was estimated with, so a frontier that is run again (or was stopped)
scores only what it lacks. The last snapshot (the run's final model) is scored once more on the whole
validation split, the figure a recipe is chosen by, kept apart in frontier_final.json. Validation images are
held out of training (protocol.holdout): these numbers choose a recipe; the test set is left for the tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.atomic import atomic_write_json
from iwae_cli.core.estimators import estimate_nll
from iwae_cli.core.model import Architecture, IWAEModel
from iwae_cli.core.provenance import environment
from iwae_cli.runs.records import read_json
from iwae_cli.runs.snapshots import list_snapshots, load_snapshot

log = logging.getLogger(__name__)

SCORES = "frontier.json"  # each pass mark's score on the marks' images
FINAL_SCORES = "frontier_final.json"  # the last snapshot's on the whole validation split


def score_snapshots(
    run_dir: Path,
    arch: Architecture,
    x_valid: torch.Tensor,
    k: int,
    seed: int,
    progress: bool | None = None,
    final: bool = False,
) -> list[dict[str, Any]]:
    """Every snapshot's validation NLL, passes and training seconds (estimated where frontier.json lacks it
    for this k, n and seed), fewest passes first; final=True: the last snapshot's only (frontier_final.json)."""
    scores_file = run_dir / (FINAL_SCORES if final else SCORES)
    scores = read_json(scores_file)
    wanted = {"split": "valid", "k": k, "n": len(x_valid), "seed": seed}
    rows = []
    snapshots = list_snapshots(run_dir)
    for path in snapshots[-1:] if final else snapshots:
        state = load_snapshot(path)
        key = str(state["passes"])
        if {name: scores.get(key, {}).get(name) for name in wanted} != wanted:
            model = IWAEModel(arch)
            model.load_state_dict(state["model"])
            model.eval()
            estimate, _ = estimate_nll(model, x_valid, k, seed, progress=progress)
            scores[key] = {**wanted, "nll": estimate.nll, "standard_error": estimate.standard_error,
                           "passes": state["passes"], "train_seconds": state["train_seconds"],
                           "environment": environment(x_valid.device)}
            atomic_write_json(scores_file, scores)  # each mark kept as soon as it is scored
            log.info("%s after %d passes: valid NLL %.2f (k=%d, n=%d)", run_dir.name, state["passes"],
                     estimate.nll, k, len(x_valid))
        rows.append(scores[key])
    return rows
