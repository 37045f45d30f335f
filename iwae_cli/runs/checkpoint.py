"""Checkpoints: everything needed to continue a run bit for bit, written atomically, read with weights_only,
and checked on every load against the checksum they carry.

A checkpoint holds the model, the optimiser, the training generator's state, the position in the schedule, the
per-epoch history and the run's identity (its fingerprint, iwae_cli.specs.identity), so that a run directory
cannot silently continue under another configuration. Format v2 adds `checksum`, a sha256 of all the rest
(content_digest): a truncated or altered file is refused in one line instead of resuming, or being evaluated,
as a different model. A v1 checkpoint (written before checksums) is read as it is, and said to be unverified.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from iwae_cli.core.atomic import atomic_write
from iwae_cli.errors import RunError, first_line

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
# a lockstep group's next checkpoint, written for every run before any replaces its checkpoint.pt (iwae_cli.training.lockstep)
NEXT_CHECKPOINT_NAME = "checkpoint.next.pt"
FORMAT = "iwae-checkpoint-v2"
UNVERIFIED_FORMAT = "iwae-checkpoint-v1"  # no checksum: read as it is
CHECKSUM_KEY = "checksum"
DAMAGED_FIX = "restore it from a copy, or delete it to train the run again from the start"


def save_checkpoint(run_dir: Path, state: dict[str, Any], name: str = CHECKPOINT_NAME) -> Path:
    """Write `state` to run_dir/<name> atomically (the previous checkpoint survives any failure), with the
    checksum of its content."""
    payload = {"format": FORMAT, **state}
    payload[CHECKSUM_KEY] = content_digest(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write(run_dir / name, lambda f: f.write(buffer.getvalue()))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one of our checkpoints with weights_only=True, its checksum verified (a v1 checkpoint has none);
    anything else, and a damaged checkpoint, is refused with a one-line RunError naming the file."""
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
            f"{path} is not a readable iwae checkpoint ({first_line(e)[:120]}); {DAMAGED_FIX}"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, UNVERIFIED_FORMAT):
        raise RunError(f"{path} is not an iwae checkpoint; delete it or point run= at an iwae run directory")
    if state["format"] == FORMAT:
        stored = state.pop(CHECKSUM_KEY, None)
        if stored != content_digest(state):
            raise RunError(f"{path} is damaged (its content does not match its checksum); {DAMAGED_FIX}")
    else:
        log.warning("%s is unverified: written before checkpoints carried a checksum, it is read as it is", path)
    return state


def verified(state: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint's content was checked against its checksum (False: a v1 checkpoint, made
    before checksums, read as it is)."""
    return state.get("format") == FORMAT


def readable_archive(path: Path) -> bool:
    """A cheap check that needs no full read (for listings): the checkpoint's zip directory, which torch.save
    writes at its end, is intact, so the file is not truncated. The checksum is verified on load."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def content_digest(state: dict[str, Any]) -> str:
    """sha256 of a checkpoint's content, the same on every machine and device: every tensor's dtype, shape and
    bytes and every other value, walked with dict keys in sorted order (the checksum itself excluded)."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add `value` to `digest`, each part tagged with its kind so that different structures never collide."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:  # None, bool, int, float, str: repr is exact (floats round-trip)
        text = repr(value)
        digest.update(f"{type(value).__name__}{len(text)}:{text}".encode())


def refuse_other_configuration(path: Path, differences: list[str]) -> None:
    """Refuse (RunError) to resume a checkpoint written under another configuration, naming what differs."""
    if differences:
        raise RunError(
            f"{path} holds a checkpoint of another configuration ({'; '.join(differences)[:300]}); "
            "choose another run directory (run_name=... or hydra.run.dir=...) or delete that one"
        )
