"""The learning rate at each step of a staged schedule (training.spec.Schedule).

The paper's schedule holds each stage's rate for the whole stage (`anneal: step`). A schedule may instead anneal
within each stage, from the stage's rate down to `min_learning_rate` along half a cosine (`anneal: cosine`; with
one stage that is the usual cosine schedule), and may warm up: over the first `warmup_passes` passes the rate
rises linearly from rate/W to the rate it would have (W the warm-up's steps). Both only change the rate the
optimiser is given; the objective and its gradient are the paper's.
"""

from __future__ import annotations

import math

from iwae_cli.core.setting_names import ANNEALS

__all__ = ["ANNEALS", "constant_within_stages", "learning_rate"]


def learning_rate(
    rates: tuple[float, ...],
    passes: tuple[int, ...],
    steps_per_epoch: int,
    stage: int,
    step_in_stage: int,
    anneal: str = "step",
    min_learning_rate: float = 0.0,
    warmup_passes: float = 0.0,
) -> float:
    """The rate of step `step_in_stage` (counted from 0) of stage `stage`."""
    rate = rates[stage]
    if anneal == "cosine":
        steps = max(passes[stage] * steps_per_epoch, 1)
        rate = min_learning_rate + (rate - min_learning_rate) * 0.5 * (1 + math.cos(math.pi * step_in_stage / steps))
    warmup_steps = round(warmup_passes * steps_per_epoch)
    step = sum(passes[:stage]) * steps_per_epoch + step_in_stage
    if step < warmup_steps:
        rate *= (step + 1) / warmup_steps
    return rate


def constant_within_stages(anneal: str, warmup_passes: float) -> bool:
    """Whether the rate changes only when a stage begins (then the loop sets it once per stage)."""
    return anneal == "step" and warmup_passes == 0
