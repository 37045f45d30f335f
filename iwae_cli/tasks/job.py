"""What every Hydra task shares: expected errors as one line, the job's output directory, its resume command."""

from __future__ import annotations

import functools
import logging
import shlex
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from iwae_cli.errors import IwaeError, RunError

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


def resume_command(command: str) -> str:
    """The command line that resumes this job: the same subcommand and overrides."""
    overrides = HydraConfig.get().overrides.task
    return " ".join(["iwae", command, *map(shlex.quote, overrides)])


def output_dir() -> Path:
    """The job's directory (hydra.run.dir, or its sweep subdirectory)."""
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    """Whether this job is one of a sweep's (then an expected error fails the job, not the process)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job logging


# the run whose work is under way in a process that handles several (a lockstep group), for OwnRecords
CURRENT_RUN: ContextVar[str | None] = ContextVar("current_run", default=None)


class OwnRecords(logging.Filter):
    """Passes one run's records (marked `run_dir` by Trainer, or logged while CURRENT_RUN names it) and the
    records of no run in particular."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = str(run_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        owner = getattr(record, "run_dir", None) or CURRENT_RUN.get()
        return owner is None or owner == self.run_dir


def run_log_handler(path: Path, own_records_only: bool = False) -> logging.Handler:
    """A handler added to the root logger that appends to `path` (its run directory created), in Hydra's
    format; own_records_only: only the records of the run in path's directory. Remove it with
    `logging.getLogger().removeHandler` and close it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError as e:
        raise RunError(
            f"cannot create the run directory {path.parent} ({e.strerror or e}); move away what is there"
        ) from None
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if own_records_only:
        handler.addFilter(OwnRecords(path.parent))
    logging.getLogger().addHandler(handler)
    return handler
