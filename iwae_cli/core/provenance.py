"""Where a stored result came from: the checkpoint it was computed from (the passes over the training set the
model had made, and whether its run had finished) and the environment that computed it (the iwae version and
git commit, torch, device, CPU threads).

Every NLL, active-unit count and final bound written to metrics.json carries this record (`made_from`), so a
result computed from an older checkpoint is known for what it is: shown as stale (`result_note`) and computed
again (`checkpoint_matches`) rather than standing for the finished model's number.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGE = "iwae-cli"  # its version is iwae_cli.__version__ (pyproject.toml reads it there)
GIT_TIMEOUT_SECONDS = 2.0


@functools.cache
def code_version() -> dict[str, str | None]:
    """The installed package's version and, where the package runs from a git checkout, its commit (None where
    git or the checkout is not there, or answers too slowly)."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = None
    root = Path(__file__).resolve().parents[2]
    commit = None
    if (root / ".git").exists():
        try:
            done = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=True,
            )
            commit = done.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"iwae": version, "commit": commit}


def environment(device: torch.device | str) -> dict[str, Any]:
    """The code, torch, device and intra-op CPU threads a result is computed with."""
    return {**code_version(), "torch": str(torch.__version__), "device": str(device), "threads": torch.get_num_threads()}


def checkpoint_record(passes: int | None, finished: bool) -> dict[str, Any]:
    """The checkpoint a result is computed from: passes made, and whether its run had finished training."""
    return {"passes": passes, "finished": finished}


def made_from(passes: int | None, finished: bool, device: torch.device | str) -> dict[str, Any]:
    """The provenance fields of a stored result: {"checkpoint": ..., "environment": ...}."""
    return {"checkpoint": checkpoint_record(passes, finished), "environment": environment(device)}


def checkpoint_matches(entry: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a stored result came from the `wanted` checkpoint (checkpoint_record). A result stored before
    provenance was recorded cannot be told apart and is taken as it is (shown as "passes ?", result_note)."""
    made = entry.get("checkpoint")
    return made is None or made == wanted


def result_note(entry: dict[str, Any] | None, passes: int | None, finished: bool) -> str:
    """How a stored result stands against its run (`finished` training after `passes`, or not): "" where it is
    the finished model's number, "passes ?" where it records no checkpoint (made by older code), "stale, passes
    N" where a finished run's result came from an earlier checkpoint, "unfinished, passes N" for any result of a
    run that has not finished training (its model is not the one the run will end with)."""
    if not entry:
        return ""
    made = entry.get("checkpoint")
    if made is None:
        return "passes ?"
    if not finished:
        return f"unfinished, passes {made.get('passes')}"
    if made.get("passes") != passes or not made.get("finished"):
        return f"stale, passes {made.get('passes')}"
    return ""


def environment_text(entry: dict[str, Any] | None) -> str:
    """A stored result's environment in one short field: 'iwae 0.1.0 (abc1234) torch 2.5.1 cpu x4' ('' where it
    records none)."""
    env = (entry or {}).get("environment")
    if not env:
        return ""
    commit = f" ({env['commit'][:7]})" if env.get("commit") else ""
    return f"iwae {env.get('iwae')}{commit} torch {env.get('torch')} {env.get('device')} x{env.get('threads')}"
