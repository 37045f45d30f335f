"""`iwae train -m ... group=true|auto|false`: a sweep whose cells of one shape train in lockstep, one job each.

The sweep's objective and seed values (`model=...`, `model.<param>=...`, `seed=...`) become the members of a
group, passed to each job as `group_members` (one override list per member); Hydra sweeps the rest (dataset,
layers, k, ...) as usual, one job per shape. The job composes every member's own config, exactly as a solo run
of that cell would have it, and trains them together (iwae_cli.tasks.lockstep). The jobs' own directories (the group's
log, tasks/train.py) go under <output_root>/groups; the runs stay where solo runs are.

This module rewrites the command line before Hydra reads it; what a group is (its member settings, when
group=auto groups) is iwae_cli.specs.group, which the group's job and the tables read too.
"""

from __future__ import annotations

import hashlib
import itertools
import json

from iwae_cli.errors import ConfigError, first_line
from iwae_cli.specs.group import groups_on, is_member_key

MULTIRUN_FLAGS = ("-m", "--multirun")


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def last_value(args: list[str], key: str, default: str) -> str:
    """The value of the last `key=...` override in args, unquoted; `default` when there is none."""
    given = [a.split("=", 1)[1].strip("'\"") for a in args if "=" in a and _key(a) == key]
    return given[-1] if given else default


def member_values(arg: str) -> list[str]:
    """The values an override gives a key: each value of a sweep (`seed=0,1,2`, `seed=range(3)`), or the one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        override = OverridesParser.create().parse_override(arg)
    except HydraException as e:
        raise ConfigError(f"cannot read {arg} ({first_line(e)})") from None
    if override.is_sweep_override():
        if not override.is_discrete_sweep():
            raise ConfigError(f"{arg}: a group's members need a list of values, not an interval")
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def grouped_arguments(args: list[str]) -> list[str]:
    """`iwae train`'s arguments with `group=...` resolved: unchanged (less `group=`) unless the command is a
    sweep whose members differ in objective or seed and grouping is on; then the member overrides are replaced
    by `group_members` and the jobs' directories moved under <output_root>/groups."""
    choice = last_value(args, "group", "false").lower()
    rest = [a for a in args if not ("=" in a and _key(a) == "group")]
    if not any(flag in args for flag in MULTIRUN_FLAGS) or not groups_on(
        choice, last_value(args, "device", "auto")
    ):
        return rest
    member_args = [a for a in rest if not a.startswith("-") and "=" in a and is_member_key(_key(a))]
    dimensions = [[f"{_key(a)}={value}" for value in member_values(a)] for a in member_args]
    members = [list(m) for m in itertools.product(*dimensions)]
    if len(members) < 2:
        return rest
    encoded = "[" + ",".join("[" + ",".join(quoted(o) for o in m) + "]" for m in members) + "]"
    digest = hashlib.sha1(json.dumps(members).encode()).hexdigest()[:8]
    return [a for a in rest if a not in member_args] + [
        f"group_members={encoded}",
        "hydra.sweep.dir=${output_root}/groups",
        # quoted: Hydra's override grammar takes a resolver with a nested interpolation only in quotes
        "hydra.sweep.subdir='${dataset.name}/L${hydra:runtime.choices.layers}-k${k}/"
        f"${{iwae_schedule:${{schedule}}}}-${{protocol.name}}-${{optim.name}}-${{loss_reduction}}-{digest}'",
    ]


def quoted(override: str) -> str:
    """An override as a quoted string inside a Hydra list."""
    if "'" in override:
        raise ConfigError(f"{override}: a group member's override cannot contain a quote")
    return f"'{override}'"
