"""Checkpoints: everything needed to continue a run bit for bit, written atomically, read with weights_only.

A checkpoint holds the model, the optimiser, the training generator's state, the position in the schedule, the
per-epoch history and the run's identity (its fingerprint, iwae_cli.specs.identity), so that a run directory
cannot silently continue under another configuration.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.atomic import atomic_write
from iwae_cli.errors import RunError, first_line

CHECKPOINT_NAME = "checkpoint.pt"
# a lockstep group's next checkpoint, written for every run before any replaces its checkpoint.pt (iwae_cli.training.lockstep)
NEXT_CHECKPOINT_NAME = "checkpoint.next.pt"
FORMAT = "iwae-checkpoint-v1"


def save_checkpoint(run_dir: Path, state: dict[str, Any], name: str = CHECKPOINT_NAME) -> Path:
    """Write `state` to run_dir/<name> atomically (the previous checkpoint survives any failure)."""
    payload = {"format": FORMAT, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write(run_dir / name, lambda f: f.write(buffer.getvalue()))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one of our checkpoints with weights_only=True; anything else is refused with a clear error."""
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise RunError(
            f"no checkpoint at {path}: train the run first (iwae train ...) or pass run=<a run directory>"
        )
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to parse a foreign file means "not ours"
        raise RunError(
            f"{path} is not a readable iwae checkpoint ({first_line(e)[:120]}); delete it to start the run afresh"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{path} is not an iwae checkpoint; delete it or point run= at an iwae run directory")
    return state


def refuse_other_configuration(path: Path, differences: list[str]) -> None:
    """Refuse (RunError) to resume a checkpoint written under another configuration, naming what differs."""
    if differences:
        raise RunError(
            f"{path} holds a checkpoint of another configuration ({'; '.join(differences)[:300]}); "
            "choose another run directory (run_name=... or hydra.run.dir=...) or delete that one"
        )
