"""Learning rates per step (training/rates.py): the paper's stages hold their rate; cosine and warm-up shape it."""

from __future__ import annotations

import math

import pytest

from iwae_cli.training.rates import constant_within_stages, learning_rate

PAPER4 = ((1e-3, 7e-4, 5e-4, 3e-4), (1, 3, 9, 27))


def test_the_papers_stages_hold_their_rate() -> None:
    for stage, rate in enumerate(PAPER4[0]):
        assert {learning_rate(*PAPER4, 10, stage, s) for s in (0, 5, 9)} == {rate}
    assert constant_within_stages("step", 0.0) and not constant_within_stages("cosine", 0.0)
    assert not constant_within_stages("step", 0.5)


def test_cosine_falls_from_the_stages_rate_to_the_floor_within_each_stage() -> None:
    rates, passes, spe = (1e-3,), (4,), 25  # 100 steps
    at = [learning_rate(rates, passes, spe, 0, s, "cosine", 1e-5) for s in range(100)]
    assert at[0] == 1e-3 and at == sorted(at, reverse=True)
    assert at[50] == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert at[99] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 99 / 100)))
    # a second stage starts again from its own rate
    assert learning_rate((1e-3, 1e-4), (1, 1), 10, 1, 0, "cosine") == 1e-4


def test_warm_up_rises_linearly_then_hands_over() -> None:
    rates, passes, spe = (1e-3,), (10,), 10
    warm = [learning_rate(rates, passes, spe, 0, s, "step", 0.0, 0.5) for s in range(8)]
    assert warm[:5] == pytest.approx([1e-3 * (s + 1) / 5 for s in range(5)])
    assert warm[5:] == [1e-3] * 3
