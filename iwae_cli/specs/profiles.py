"""What a profile (conf/profile/<name>.yaml) tells the runs it names: one mapping for the table commands, which
hand it to their training and switch-objective jobs (tasks/tables/sweep.py), and for `iwae train profile=...`
and the other run commands (cli/profiles.py), so that a table's cell trained or evaluated alone is the table's.

A profile is a schedule (part of each run's identity: its name and fingerprint) and how the runs are evaluated
(test NLL with eval_k samples on the first eval_examples test images, and with prune_inactive also the NLL with
the inactive units removed), which is recorded in the run but never changes its identity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from iwae_cli.errors import ConfigError
from iwae_cli.specs.checks import flag, whole_number


@dataclass(frozen=True)
class Profile:
    """How long a profile's runs train (its schedule) and how they are evaluated."""

    name: str
    schedule: str
    eval_k: int
    eval_examples: int | None  # None: the whole test set
    prune_inactive: bool


def profile_of(node: Mapping[str, Any]) -> Profile:
    """A profile's values (a file of conf/profile, or a table command's `profile` node with the user's changes),
    checked: ConfigError, one line, for the first that cannot be used."""
    name = str(node["name"])
    if not re.fullmatch(r"[\w.-]+", name):
        raise ConfigError(f"profile.name names the tables' folder: letters, digits, . _ -, got profile.name={name}")
    return Profile(
        name=name,
        schedule=str(node["schedule"]),
        eval_k=whole_number(node["eval_k"], "profile.eval_k"),
        eval_examples=whole_number(node["eval_examples"], "profile.eval_examples", allow_null=True),
        prune_inactive=flag(node["prune_inactive"], "profile.prune_inactive"),
    )


def conf_dir() -> Path:
    """The packaged configs' folder (iwae_cli.conf), found without importing that package: its import registers
    the config resolvers, loading omegaconf, which `iwae <command> --help` does without (cli/help.py)."""
    spec = find_spec("iwae_cli.conf")
    assert spec is not None and spec.submodule_search_locations, "iwae_cli.conf is part of the package"
    return Path(next(iter(spec.submodule_search_locations)))


PROFILES = conf_dir() / "profile"


def profile_names() -> list[str]:
    """The packaged profiles, by name."""
    return sorted(p.name[: -len(".yaml")] for p in PROFILES.iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str) -> Profile:
    """The packaged profile `name`."""
    if name not in profile_names():
        raise ConfigError(f"profile={name} is not a profile: choose one of {', '.join(profile_names())}")
    return profile_of(yaml.safe_load(PROFILES.joinpath(f"{name}.yaml").read_text()))


def schedule_override(profile: Profile) -> str:
    """The training schedule the profile names, as a training job's override."""
    return f"schedule={profile.schedule}"


def evaluation_overrides(profile: Profile, prune_inactive: bool) -> list[str]:
    """How a job evaluates its run (with evaluate=true, or in eval-nll) under the profile; prune_inactive: also
    the NLL with the inactive units removed (table1 asks as the profile says, table2 and table-extra never)."""
    examples = profile.eval_examples
    return [
        f"eval.k={profile.eval_k}",
        f"eval.examples={'null' if examples is None else examples}",
        f"eval.prune_inactive={str(bool(prune_inactive)).lower()}",
    ]
