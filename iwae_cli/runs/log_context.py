"""Which run a log record is about, in a process that works on several (a lockstep group, a table's jobs).

Records a Trainer logs carry `run_dir` themselves; everything logged inside `about(run_dir)` (an evaluation, the
figures) is marked through CURRENT_RUN (record_run reads either), so each run's train.log gets its own lines and
the console names it (RunNaming).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

CURRENT_RUN: ContextVar[str | None] = ContextVar("current_run", default=None)


@contextmanager
def about(run_dir: Path) -> Iterator[None]:
    """Mark what is logged inside the block as being about run_dir."""
    token = CURRENT_RUN.set(str(run_dir))
    try:
        yield
    finally:
        CURRENT_RUN.reset(token)


def record_run(record: logging.LogRecord) -> str | None:
    """The run directory a record is about, or None for a record about no run in particular."""
    return getattr(record, "run_dir", None) or CURRENT_RUN.get()


def run_label(run_dir: str) -> str:
    """A run as the console names it: dataset/cell/name, the tail of its directory that tells runs apart."""
    return "/".join(Path(run_dir).parts[-3:])


class RunNaming(logging.Formatter):
    """Formats as `inner` does, with the message led by the run the record is about (run_label), so that the
    interleaved lines of several models (a table's jobs, a lockstep group) each say whose they are. The record
    itself is left as it is: the run's own train.log needs no name."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        owner = record_run(record)
        if owner is None:
            return self.inner.format(record)
        named = logging.makeLogRecord(record.__dict__)
        named.msg, named.args = f"{run_label(owner)}: {record.getMessage()}", None
        return self.inner.format(named)


@contextmanager
def runs_named_on_console() -> Iterator[None]:
    """Within the block, the root logger's console handlers name the run of each record (RunNaming); file
    handlers, one run's own log, stay as they are."""
    console = [
        (handler, handler.formatter)
        for handler in logging.getLogger().handlers
        if type(handler) is logging.StreamHandler and not isinstance(handler.formatter, RunNaming)
    ]
    for handler, formatter in console:
        handler.setFormatter(RunNaming(formatter or logging.Formatter()))
    try:
        yield
    finally:
        for handler, formatter in console:
            handler.setFormatter(formatter)
