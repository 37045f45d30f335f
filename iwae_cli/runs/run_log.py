"""A run's log file (train.log): opened only once the run's process owns it and will work on it.

Hydra's job logging goes to the console only (conf/train.yaml); the run lifecycle (iwae_cli.pipeline.lifecycle)
opens each run's log file itself, so that a process refused because the run is busy, or a re-run of a finished
run, writes nothing into the run's directory. What a run logs before it is known to train (the Trainer's
"resuming ..." line) is held in memory and goes into the file first, in order, when it opens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from logging.handlers import MemoryHandler
from pathlib import Path

from iwae_cli.errors import RunError
from iwae_cli.runs.log_context import record_run

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job logging
LOG_NAME = "train.log"


class OwnRecords(logging.Filter):
    """Passes one run's records (marked `run_dir` by Trainer, or logged while CURRENT_RUN names it) and the
    records of no run in particular."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = str(run_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        owner = record_run(record)
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


@contextmanager
def held_run_log(path: Path, own_records_only: bool = False) -> Iterator[Callable[[], None]]:
    """Within the block, what is logged is held in memory for the log file `path`; calling the yielded
    function opens the file (run_log_handler) with what was held, and it takes every record from then on.
    Never called, the file is never touched. Both handlers are removed and closed at the block's end."""
    root = logging.getLogger()
    held = MemoryHandler(capacity=1_000_000, flushLevel=logging.CRITICAL + 1, flushOnClose=False)
    root.addHandler(held)
    opened: list[logging.Handler] = []

    def open_file() -> None:
        if opened:
            return
        opened.append(run_log_handler(path, own_records_only))
        held.setTarget(opened[0])
        held.flush()  # the file's filter picks the records it takes
        root.removeHandler(held)

    try:
        yield open_file
    finally:
        for handler in (held, *opened):
            root.removeHandler(handler)
            handler.close()
