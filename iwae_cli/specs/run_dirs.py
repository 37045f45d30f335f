"""Which directory a run's config names: its identity's name (identity.run_name), or, for a run that an earlier
version trained under another name, that run's directory, so that it resumes and is read where it is.

The configs interpolate it (`run_name: ${iwae_run_name:}` in conf/train.yaml, through specs/resolvers.py), so
Hydra's run and sweep directories, a lockstep group's members and the printed resume commands all agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from iwae_cli.errors import IwaeError
from iwae_cli.specs.identity import IDENTITY_SOURCES, differences, identity, legacy_run_name, run_name
from iwae_cli.specs.run import typed_parts, typed_v1

CONFIG_NAME = "config.yaml"


def layers_choice(root: Any) -> str:
    """The `layers=` option a config was composed with (version 1 named runs by it)."""
    chosen = OmegaConf.select(root, "hydra.runtime.choices.layers", default=None)
    return str(chosen) if chosen is not None else str(len(root.arch.latent_units))


def chosen_run_name(root: Any) -> str:
    """The run directory (relative to <output_root>/runs) of the config `root`. A config that makes no valid
    run keeps version 1's name: the run refuses it with one line, and a sweep records the refusal there."""
    legacy = legacy_run_name(root, layers_choice(root))
    try:
        parts = typed_parts(root)
    except (IwaeError, AttributeError, KeyError, TypeError, ValueError):
        return legacy
    name = run_name(root, parts)
    runs = Path(str(root.output_root)) / "runs"
    if legacy != name and not (runs / name / CONFIG_NAME).exists() and same_run(runs / legacy, identity(parts)):
        return legacy
    return name


def same_run(run_dir: Path, expected: dict[str, Any]) -> bool:
    """Whether run_dir holds a run (its config.yaml) whose typed identity is `expected`."""
    try:
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_NAME), resolve=False)
        stored = typed_v1({key: saved.get(key) for key in IDENTITY_SOURCES})
    except (OSError, IwaeError, ValueError, TypeError, AttributeError):
        return False
    return not differences(stored, expected)
