"""Process-level concerns shared by the stages: the device, CPU threads, progress bars, and turning signals into a
clean stop."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from iwae_cli.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; `cuda` without a GPU is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "device=cuda but no CUDA GPU is visible to PyTorch; use device=cpu or device=auto"
            )
        return torch.device(name)
    raise ConfigError(f"unknown device={name}; use auto, cpu or cuda")


def configure_torch(threads: int | None) -> None:
    """Set torch's intra-op CPU threads (None keeps torch's default: one per core) and flush denormals.

    Denormal floats (tiny values in gradients and Adam's moments) made a k=50 training step 3-4x slower on
    this project's CPUs; flushing them to zero changes no result at the precision that matters.
    """
    torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)


class StopFlag:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps, so a step is never cut in half."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def raise_flag(self, signum: int) -> None:
        """Note that the signal `signum` arrived (a signal handler)."""
        self.signal_name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Within the block, SIGINT and SIGTERM set the yielded flag instead of killing the process."""
    flag = StopFlag()

    def handler(signum, _frame):
        flag.raise_flag(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
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
