"""What every Hydra task shares: expected errors as one line, the job's output directory, its resume command."""

from __future__ import annotations

import functools
import re
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from iwae_cli.errors import IwaeError

T = TypeVar("T")


class UserError(CompactHydraException):
    """An expected error inside a sweep job: Hydra marks the job failed and lets the other jobs finish."""


def user_facing(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Expected errors (IwaeError) and Ctrl-C become one `error: ...` line and a non-zero exit, no traceback.

    In a single run we print and exit here; in a multirun the job fails (UserError) so the sweep goes on.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T:
        try:
            return task(cfg)
        except (IwaeError, KeyboardInterrupt) as e:
            message = f"error: {e}" if isinstance(e, IwaeError) else "error: interrupted"
            code = e.exit_code if isinstance(e, IwaeError) else 130
            if in_multirun():
                raise UserError(message) from None
            print(message, file=sys.stderr)
            sys.exit(code)

    return wrapper


def resume_command(command: str, run_dir: Path | None = None) -> str:
    """The command line that resumes this job: the same subcommand and overrides. run_dir: the run this job
    trains; where it is not the directory that the same overrides name outside a sweep (a searching sweeper
    appends the values a trial tried, cli/search.py), the command names it with hydra.run.dir."""
    hydra = HydraConfig.get()
    overrides = list(hydra.overrides.task)
    if run_dir is not None and in_multirun() and Path(hydra.run.dir).absolute() != run_dir.absolute():
        overrides.append(f"hydra.run.dir={hydra_quoted(str(run_dir))}")
    return command_line(command, overrides)


def command_line(command: str, overrides: Iterable[str]) -> str:
    """`iwae <command> <overrides>` to paste into a shell: each override as the user types it, shell-quoted
    only where the shell needs it. The CLI hands Hydra `layers='2'` for the `layers=2` the user typed (Hydra
    reads a bare 2 as an int: cli/arguments.py quote_layers); printed as typed, the CLI quotes it again."""
    return " ".join(["iwae", command, *(shlex.quote(as_typed(o)) for o in overrides)])


def as_typed(override: str) -> str:
    """`layers='2'` -> `layers=2`; every other override unchanged."""
    key, _, value = override.partition("=")
    if key == "layers" and re.fullmatch(r"'\w+'", value):
        return f"{key}={value[1:-1]}"
    return override


def hydra_quoted(value: str) -> str:
    """`value` as one element of Hydra's override grammar: bare where it can be, else single-quoted."""
    return value if re.fullmatch(r"[\w./+-]+", value) else "'" + value.replace("'", "\\'") + "'"


def output_dir() -> Path:
    """The job's directory (hydra.run.dir, or its sweep subdirectory)."""
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    """Whether this job is one of a sweep's (then an expected error fails the job, not the process)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def searching_sweep() -> bool:
    """Whether this job is a trial of a sweeper that searches (Optuna's, any but Hydra's basic one), which
    optimises the number the job returns."""
    return in_multirun() and HydraConfig.get().runtime.choices.get("hydra/sweeper") != "basic"
