"""Process-level concerns shared by the stages: the device, CPU threads, progress bars (and log lines beside
them), and turning signals into a clean stop."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import torch
from tqdm.auto import tqdm  # the class of the bars (their lock and instances)

from iwae_cli.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; `cuda` (`cuda:<index>`) or `mps` (an Apple GPU) that this
    machine lacks is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name} but no CUDA GPU is visible to PyTorch; use device=cpu or device=auto"
            )
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                "device=mps but MPS (an Apple GPU) is not available here; use device=cpu or device=auto"
            )
        return torch.device("mps")
    raise ConfigError(f"unknown device={name}; use auto, cpu, cuda, cuda:<index> or mps")


def configure_torch(threads: int | None) -> None:
    """Set torch's intra-op CPU threads (None keeps torch's default: one per core) and flush denormals.

    Denormal floats (tiny values in gradients and Adam's moments) made a k=50 training step 3-4x slower on
    this project's CPUs; flushing them to zero changes no result at the precision that matters.
    """
    torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)


class StopFlag:
    """Set by a stop signal (SIGINT, SIGTERM, and any added by also_stop_on); the training loop checks it between
    steps, so a step is never cut in half. The last signal to arrive is the one recorded (a scheduler that sends
    SIGTERM and then its own warning signal is answered as the warning asks)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def raise_flag(self, signum: int) -> None:
        """Note that the signal `signum` arrived (a signal handler)."""
        self.signum = signum


# The signals that stop training at a step boundary; also_stop_on adds a job scheduler's warning signal.
_stop_signals: list[int] = [signal.SIGINT, signal.SIGTERM]


@contextmanager
def also_stop_on(signum: int) -> Iterator[None]:
    """Within the block, `signum` also stops training cleanly (stop_on_signals): a scheduler's warning that the
    job is about to end (submitit's SIGUSR2 before a SLURM time limit), whose own handler would otherwise exit
    in the middle of a step and lose everything since the last checkpoint."""
    _stop_signals.append(signum)
    try:
        yield
    finally:
        _stop_signals.remove(signum)


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Within the block, the stop signals (SIGINT, SIGTERM, and those of also_stop_on) set the yielded flag
    instead of reaching their handlers; the handlers in place before are restored after it."""
    flag = StopFlag()

    def handler(signum, _frame):
        flag.raise_flag(signum)

    previous = {}
    for sig in dict.fromkeys(_stop_signals):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. some launchers): signals stay as they were
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's `disable` for a progress setting: True/False force it, None lets tqdm show it only on a terminal."""
    return None if progress is None else not progress


class _AroundBars:
    """A console stream whose writes clear the progress bars first and redraw them after (tqdm's
    external_write_mode), so what is written starts on a line of its own and the bar continues below it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        for console in (sys.stdout, sys.stderr):  # what a bar wrote to the other stream (a closed bar's newline)
            if console is not self.stream:  # goes out first
                console.flush()
        with tqdm.external_write_mode(file=self.stream):
            written = self.stream.write(text)
            self.stream.flush()  # out before the bar is redrawn (stdout need not be line-buffered)
        return written

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        """Everything else (isatty, encoding, name) as the stream has it: a formatter may ask."""
        return getattr(self.stream, name)


@contextmanager
def logs_clear_of_bars() -> Iterator[None]:
    """Within the block, the root logger's console handlers write around the progress bars, never into one.

    A bar (stderr) leaves the cursor at its end; a log line (stdout) written then would be glued to it and the
    next redraw would overwrite the line. Only the handlers' streams change: their level, format and filters,
    and every file handler, stay as they are. Enter it where the handlers exist: Hydra sets up job logging
    just before it calls the task, so the CLI enters this around the task (cli/main.py, lazy_task).
    """
    swapped = [
        (handler, handler.stream)
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr)
    ]
    for handler, stream in swapped:
        handler.setStream(_AroundBars(stream))  # type: ignore[arg-type]
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)
