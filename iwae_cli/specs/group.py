"""What a lockstep group is: the settings its members may differ in, and whether `group=true|false|auto` groups
a sweep on a device.

The command line's rewriting of a grouped sweep (iwae_cli.cli.group_sweep), the group's job
(iwae_cli.tasks.lockstep) and the tables' job count (iwae_cli.tasks.tables.sweep) all read these two rules; they
live in specs, below tasks, so that the command layer and the task layer share one definition.
"""

from __future__ import annotations

from iwae_cli.specs.checks import GROUP_CHOICES, check_setting

__all__ = ["GROUP_CHOICES", "groups_on", "is_member_key"]


def is_member_key(key: str) -> bool:
    """The settings that may differ within a group: the objective (and its parameters) and the seed."""
    return key in ("model", "seed") or key.startswith("model.")


def groups_on(choice: str, device: str) -> bool:
    """Whether a sweep with group=`choice` on `device` trains in lockstep groups.

    group=auto groups where it is measured faster: on CUDA, where a step is bound by kernel launches. On CPU it
    does not group (`iwae bench` shows grouped steps no faster than solo ones at the table's k=50, and the table
    runs one solo job per core instead).
    """
    choice = check_setting("group", choice)
    if choice != "auto":
        return choice == "true"
    import torch

    return device != "cpu" and torch.cuda.is_available()
