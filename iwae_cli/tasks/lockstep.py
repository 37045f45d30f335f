"""The job of `iwae train -m ... group=true`: its members' configs composed as their solo runs would have them,
trained in lockstep (iwae_cli.training.lockstep), then each evaluated and finished as a solo run is.

Each member's run directory gets its own config.yaml, checkpoint, metrics, status and train.log (the group's
messages, and the member's own); the job's directory under <output_root>/groups has the whole job's log.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from iwae_cli.errors import ConfigError, RunError
from iwae_cli.evaluation.spec import EvalSpec
from iwae_cli.runs.lock import hold_run_dir
from iwae_cli.specs.run import run_spec
from iwae_cli.tasks.finish import evaluation_of, finish_run, record_refusal
from iwae_cli.tasks.group_sweep import is_member_key
from iwae_cli.tasks.job import CURRENT_RUN, command_line, run_log_handler
from iwae_cli.tasks.requeue import requeue_when_stopped
from iwae_cli.training.lifecycle import check_resumable
from iwae_cli.training.lockstep import train_lockstep
from iwae_cli.training.spec import RunSpec

log = logging.getLogger(__name__)

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


def train_group(cfg: DictConfig) -> list[str]:
    """Train the job's members together, evaluate each as a solo run would be; RunError (the job fails, the
    others' results kept) when any member was refused or failed."""
    configs = member_configs(cfg)
    if len(configs) < len(cfg.group_members):
        raise ConfigError(
            "two members of the group name the same run directory; give each its own seed or model"
        )
    failures: dict[Path, str] = {}
    specs: dict[Path, tuple[RunSpec, EvalSpec | None]] = {}
    resume_hint = group_resume_command(cfg)
    for run_dir, member in configs.items():
        try:
            specs[run_dir] = run_spec(member, resume_hint), evaluation_of(member)
        except ConfigError as e:
            record_refusal(run_dir, member, str(e))
            failures[run_dir] = str(e)
    with ExitStack() as stack:
        for run_dir, (spec, _) in specs.items():
            check_resumable(run_dir, spec.fingerprint)  # before anything in it is touched
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(hold_run_dir(run_dir))  # through evaluation, as a solo `iwae train`
            handler = run_log_handler(run_dir / "train.log", own_records_only=True)
            stack.callback(handler.close)
            stack.callback(logging.getLogger().removeHandler, handler)
        with requeue_when_stopped(list(specs)):  # under submitit a time limit requeues the whole group
            finished, failed = train_lockstep([spec for spec, _ in specs.values()], list(specs))
        failures.update(failed)
        for trainer in finished:
            token = CURRENT_RUN.set(str(trainer.run_dir))
            try:
                finish_run(trainer, specs[trainer.run_dir][1])
            finally:
                CURRENT_RUN.reset(token)
    if failures:
        first, reason = next(iter(failures.items()))
        raise RunError(f"{len(failures)} of {len(configs)} runs of the group failed; {first}: {reason}")
    return [str(d) for d in configs]
