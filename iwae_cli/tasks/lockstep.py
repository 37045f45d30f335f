"""The job of `iwae train -m ... group=true`: its members' configs composed as their solo runs would have them,
and the command that resumes the job; tasks/train.py carries the runs out together, in lockstep.

Each member's run directory gets its own config.yaml, checkpoint, metrics, status and train.log (the group's
messages, and the member's own); the job's directory under <output_root>/groups has the whole job's log.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from iwae_cli.specs.group import is_member_key
from iwae_cli.tasks.job import command_line

GROUP_KEYS = ("group", "group_members")


def shared_overrides() -> list[str]:
    """The job's overrides, less the group's own and any member setting: what every member shares."""
    return [
        o
        for o in HydraConfig.get().overrides.task
        if (key := o.split("=", 1)[0].lstrip("+~")) not in GROUP_KEYS and not is_member_key(key)
    ]


def member_configs(cfg: DictConfig) -> dict[Path, DictConfig]:
    """Each member's config by its run directory: the shared overrides plus the member's, composed as `iwae
    train` composes a solo run, and the directory its hydra.run.dir names (run_name resolves within this job)."""
    name = HydraConfig.get().job.config_name
    configs = {}
    for member in cfg.group_members:
        composed = compose(config_name=name, overrides=[*shared_overrides(), *member], return_hydra_config=True)
        run_dir = Path(composed.hydra.run.dir)
        with open_dict(composed):
            del composed["hydra"]
        configs[run_dir] = composed
    return configs


def group_resume_command(cfg: DictConfig) -> str:
    """The sweep that resumes this job: its shared overrides, each member setting's values as a sweep (the
    members are their product), group=true."""
    values: dict[str, list[str]] = {}
    for member in cfg.group_members:
        for override in member:
            key, value = override.split("=", 1)
            values.setdefault(key, [])
            if value not in values[key]:
                values[key].append(value)
    sweeps = [f"{key}={','.join(v)}" for key, v in values.items()]
    return command_line("train", ["-m", *shared_overrides(), *sweeps, "group=true"])
