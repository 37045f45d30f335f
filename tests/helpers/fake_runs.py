"""Run directories written by hand for the tests that read many runs (`iwae runs`, `iwae runs --remove`): a
config, metrics and status each, and no training."""

from __future__ import annotations

import json
from pathlib import Path

# (objective, k, seed, state, test NLL or None): written as run directories, no training needed
RUNS = [
    ("vae", 5, 0, "done", 94.4),
    ("iwae", 5, 0, "done", 93.9),
    ("iwae", 50, 0, "done", 92.7),
    ("iwae", 50, 1, "failed", None),
    ("vae", 50, 1, "done", 93.8),
]


def run_name(objective: str, k: int, seed: int) -> str:
    return f"mnist/L1-{objective}-k{k}/quick-text-paper-sum-seed{seed}"


def write_runs(root: Path) -> None:
    for objective, k, seed, state, nll in RUNS:
        run = root / "runs" / run_name(objective, k, seed)
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"model:\n  name: {objective}\nk: {k}\nseed: {seed}\n")
        summary = {"dataset": "mnist", "layers": 1, "objective": objective, "k": k, "seed": seed,
                   "schedule": "quick", "protocol": "text", "optim": "paper", "loss_reduction": "sum"}
        metrics = {"run": summary, "train": {"passes_done": 10 if state == "done" else 3}}
        if nll is not None:
            metrics["test_nll"] = {"nll": nll, "standard_error": 0.7, "k": 5000, "n": 500}
        (run / "metrics.json").write_text(json.dumps(metrics))
        (run / "status.json").write_text(json.dumps({"state": state, "message": None}))
