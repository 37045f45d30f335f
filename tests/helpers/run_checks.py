"""Helpers for tests that run real `iwae` processes and compare the run directories they leave."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from iwae_cli.specs.identity import schedule_label, shipped
from tests.helpers.background import Background


def environment(data_dir: Path, output_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "OC_CAUSE")}
    env.update(IWAE_DATA_DIR=str(data_dir), IWAE_OUTPUT_ROOT=str(output_root), PYTHONUNBUFFERED="1")
    return env


# Start the command with SIGINT at its default, as in a terminal, even when the test runner inherited SIGINT
# ignored (a background job of a non-interactive shell); exec keeps that disposition, and Python then installs
# its KeyboardInterrupt handler. (A preexec_fn would do the same but is unsafe in a process with threads.)
WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def background_iwae(script: Path, args: tuple[str, ...], env: dict[str, str], logs: Path) -> Background:
    """`iwae <args>` in the background, with Python's default SIGINT handler (see WITH_DEFAULT_SIGINT)."""
    return Background([sys.executable, "-c", WITH_DEFAULT_SIGINT, str(script), *args], env, logs)


def run_iwae(script: Path, args, env: dict[str, str], logs: Path) -> Background:
    process = background_iwae(script, tuple(args), env, logs)
    process.succeed()
    return process


def override_value(value) -> str:
    """`value` as a Hydra command line writes it (lists as `[a,b]`, floats exactly, None as null)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def schedule_overrides(**changes) -> tuple[str, ...]:
    """The command line's `schedule.<key>=<value>` overrides that make `changes`, e.g. passes=[2]."""
    return tuple(f"schedule.{key}={override_value(value)}" for key, value in changes.items())


def schedule_name(base: str = "smoke", **changes) -> str:
    """The schedule part of a run directory's name: the shipped schedule `base` with `changes` (as a command
    line's schedule.<key>=... overrides give them: `schedule_overrides(**changes)`)."""
    file = shipped("schedule", base)
    assert file is not None, f"no schedule {base} ships with iwae"
    return schedule_label(OmegaConf.merge(file, changes))


def load_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def bound_columns(run_dir: Path) -> list[tuple[str, ...]]:
    with open(run_dir / "train_log.csv", newline="") as f:
        columns = ("stage", "epoch", "passes_done", "learning_rate", "train_bound", "valid_bound")
        return [tuple(row[c] for c in columns) for row in csv.DictReader(f)]


def assert_same_run(resumed: Path, reference: Path, passes: int = 2) -> None:
    """Bit-identical parameters, optimiser state and generator; identical per-epoch bounds; `passes` done."""
    a, b = load_checkpoint(resumed), load_checkpoint(reference)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    for index in state_a:
        for name, value in state_a[index].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(state_b[index][name])), (index, name)
    assert torch.equal(a["generator"], b["generator"])
    assert a["position"]["passes_done"] == b["position"]["passes_done"] == passes
    assert bound_columns(resumed) == bound_columns(reference)
    assert len(bound_columns(resumed)) == passes
    keys = ("final_train_bound", "final_valid_bound", "passes_done")
    train_a, train_b = (read_json(d / "metrics.json")["train"] for d in (resumed, reference))
    assert [train_a[k] for k in keys] == [train_b[k] for k in keys]
    assert read_json(resumed / "status.json")["state"] == "done"
