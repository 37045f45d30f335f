"""Where a run stands in its schedule, and its per-epoch log (train_log.csv): both part of the checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iwae_cli.core.atomic import atomic_write_text

HISTORY_CSV = "train_log.csv"
HISTORY_COLUMNS = ("stage", "epoch", "passes_done", "learning_rate", "train_bound", "valid_bound", "seconds")


@dataclass
class Position:
    """Where a run stands in its schedule, plus the running sums of the epoch in progress."""

    stage: int = 0
    epoch_in_stage: int = 0
    step_in_epoch: int = 0
    passes_done: int = 0
    epoch_bound_sum: float = 0.0
    epoch_examples: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a missing validation bound is recorded as null."""
    return value if value is not None and math.isfinite(value) else None


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """The per-epoch log as CSV, rewritten atomically (so a resumed run never shows rows it later redid)."""
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [
        ",".join(repr(row[c]) if isinstance(row[c], float) else str(row[c]) for c in HISTORY_COLUMNS)
        for row in history
    ]
    atomic_write_text(run_dir / HISTORY_CSV, "\n".join(lines) + "\n")
