"""Whether a training step is compiled: one decision for a run alone and for a lockstep group.

`compile=auto` compiles runs long enough to repay the compile time and falls back to the plain step where
torch.compile does not work here (it needs a C++ compiler on CPU, Triton on CUDA); `compile=true` insists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

from iwae_cli.errors import ConfigError, first_line

log = logging.getLogger(__name__)

T = TypeVar("T")

# compile=auto compiles the step for runs at least this long (compiling takes ~10 s)
COMPILE_MIN_STEPS = 2_000


def compile_mode(device: torch.device) -> str | None:
    """torch.compile's mode for a training step: on CUDA with CUDA graphs (a minibatch-20 step is bound by
    kernel launches, which one graph replay removes), on CPU the default."""
    return "reduce-overhead" if device.type == "cuda" else None


def compiled_or_none(choice: str, remaining_steps: int, build: Callable[[], T], what: str) -> T | None:
    """`build()` (which compiles) where `choice` (auto, true or false) asks for a compiled step, else None.

    auto: only for at least COMPILE_MIN_STEPS remaining steps, and None (with a warning) where compiling fails;
    true: a failure is a ConfigError naming the way out."""
    if choice == "false" or (choice == "auto" and remaining_steps < COMPILE_MIN_STEPS):
        return None
    log.info("compiling %s (seconds; compile=false skips this)", what)
    try:
        return build()
    except Exception as e:  # torch.compile needs a C++ compiler (CPU) or Triton (CUDA)
        reason = first_line(e)
        if choice == "auto":
            log.warning("torch.compile failed (%s); training with the plain step", reason)
            return None
        raise ConfigError(f"compile=true but torch.compile failed here: {reason}. Use compile=auto or false") from e
