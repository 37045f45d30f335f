"""The job of `iwae train -m ... group=true`: its members' configs composed as their solo runs would have them,
trained in lockstep (group_train.py), then each evaluated and finished as a solo run is.

Each member's run directory gets its own config.yaml, checkpoint, metrics, status and train.log (the group's
messages, and the member's own); the job's directory under <output_root>/groups has the whole job's log.
"""

from __future__ import annotations

import logging
import shlex
from contextlib import ExitStack
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .errors import ConfigError, RunError
from .group_sweep import is_member_key
from .group_train import train_lockstep
from .hydra_job import CURRENT_RUN, run_log_handler
from .lock import hold_run_dir
from .run_lifecycle import check_resumable
from .run_spec import RunSpec
from .tasks import finish_run, record_refusal

log = logging.getLogger(__name__)

GROUP_KEYS = ("group", "group_members")


def shared_overrides() -> list[str]:
    """The job's overrides, less the group's own and any member setting: what every member shares."""
    return [
        o
        for o in HydraConfig.get().overrides.task
        if (key := o.split("=", 1)[0].lstrip("+~")) not in GROUP_KEYS and not is_member_key(key)
    ]


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """Each member's config: the shared overrides plus the member's, composed as `iwae train` composes a solo
    run (run_name resolves within this job)."""
    name = HydraConfig.get().job.config_name
    return [
        compose(config_name=name, overrides=[*shared_overrides(), *member]) for member in cfg.group_members
    ]


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
    return " ".join(["iwae", "train", "-m", *map(shlex.quote, [*shared_overrides(), *sweeps]), "group=true"])


def run_dir_of(cfg: DictConfig) -> Path:
    """Where a solo run of this config lives (train.yaml's hydra.run.dir)."""
    return Path(cfg.output_root) / "runs" / str(cfg.run_name)


def train_group(cfg: DictConfig) -> list[str]:
    """Train the job's members together, evaluate each as a solo run would be; RunError (the job fails, the
    others' results kept) when any member was refused or failed."""
    configs = {run_dir_of(c): c for c in member_configs(cfg)}
    if len(configs) < len(cfg.group_members):
        raise ConfigError(
            "two members of the group name the same run directory; give each its own seed or model"
        )
    failures: dict[Path, str] = {}
    specs: dict[Path, RunSpec] = {}
    for run_dir, member in configs.items():
        try:
            specs[run_dir] = RunSpec.from_config(member)
        except ConfigError as e:
            record_refusal(run_dir, member, str(e))
            failures[run_dir] = str(e)
    with ExitStack() as stack:
        for run_dir, spec in specs.items():
            check_resumable(run_dir, spec.fingerprint)  # before anything in it is touched
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(hold_run_dir(run_dir))  # through evaluation, as a solo `iwae train`
            handler = run_log_handler(run_dir / "train.log", own_records_only=True)
            stack.callback(handler.close)
            stack.callback(logging.getLogger().removeHandler, handler)
        finished, failed = train_lockstep(list(specs.values()), list(specs), group_resume_command(cfg))
        failures.update(failed)
        for trainer in finished:
            token = CURRENT_RUN.set(str(trainer.run_dir))
            try:
                finish_run(trainer.run_dir, trainer, configs[trainer.run_dir])
            finally:
                CURRENT_RUN.reset(token)
    if failures:
        first, reason = next(iter(failures.items()))
        raise RunError(f"{len(failures)} of {len(configs)} runs of the group failed; {first}: {reason}")
    return [str(d) for d in configs]
