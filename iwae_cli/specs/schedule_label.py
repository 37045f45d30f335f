"""The name a run's schedule goes by in its run directory and its metrics: the schedule file's own name, or,
where the command line changed any of its values (`schedule.passes=[1,3,9,27]`), that name marked custom with a
digest of the values. A run of a custom schedule then never takes a named schedule's run directory (whose
checkpoint fingerprint would refuse the named run later) nor a table's cell.

Run directories are interpolated by Hydra (`${iwae_schedule:${schedule}}` in conf/train.yaml) wherever a config
is composed; the resolver is registered when this module is imported, which the configs' package does
(conf/__init__.py), so every process that reads the configs has it.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

RESOLVER = "iwae_schedule"


def shipped_schedule(name: str) -> dict[str, Any] | None:
    """conf/schedule/<name>.yaml's values, or None where no schedule of that name ships with iwae."""
    path = resources.files("iwae_cli.conf").joinpath("schedule", f"{name}.yaml")
    if "/" in name or not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def schedule_label(node: DictConfig) -> str:
    """`node.name` when its values are those of the schedule file of that name (or no such file ships: a user's
    own file names itself); else `<name>-custom-<digest of the values>`."""
    values = OmegaConf.to_container(node, resolve=True)
    name = str(values.pop("name"))
    shipped = shipped_schedule(name)
    if shipped is None:
        return name
    shipped.pop("name", None)
    if values == shipped:
        return name
    digest = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}-custom-{digest}"


OmegaConf.register_new_resolver(RESOLVER, schedule_label, replace=True)
