"""Which run a log record is about, in a process that works on several (a lockstep group, a table's jobs).

Records a Trainer logs carry `run_dir` themselves; everything logged inside `about(run_dir)` (an evaluation, the
figures) is marked through CURRENT_RUN, so each run's train.log gets its own lines and the console can name it.
"""

from __future__ import annotations

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
