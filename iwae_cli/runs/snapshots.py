"""Snapshots: the model of a run as it stood after a given number of passes (`snapshot_passes=[...]`), kept in
<run_dir>/snapshots/ beside the checkpoint so that a time-to-quality curve (`iwae frontier`) can be scored after
training. A snapshot holds the parameters and the training seconds spent to reach it; it is never resumed from.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.atomic import atomic_write
from iwae_cli.errors import RunError

SNAPSHOTS = "snapshots"
FORMAT = "iwae-snapshot-v1"


def snapshot_path(run_dir: Path, passes: int) -> Path:
    return run_dir / SNAPSHOTS / f"passes-{passes:05d}.pt"


def save_snapshot(run_dir: Path, passes: int, model: dict[str, torch.Tensor], train_seconds: float) -> Path:
    """Write the model after `passes` passes, atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "passes": passes, "train_seconds": train_seconds, "model": model}, buffer)
    path = snapshot_path(run_dir, passes)
    path.parent.mkdir(exist_ok=True)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def list_snapshots(run_dir: Path) -> list[Path]:
    """The run's snapshots, fewest passes first."""
    found = [p for p in (run_dir / SNAPSHOTS).glob("passes-*.pt") if re.fullmatch(r"passes-\d+\.pt", p.name)]
    return sorted(found)


def load_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot (weights_only); RunError naming the file where it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read it means it cannot be scored
        raise RunError(f"{path} is not a readable snapshot ({e}); delete it and train the run again") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{path} is not an iwae snapshot; delete it")
    return state
