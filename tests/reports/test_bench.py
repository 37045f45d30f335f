"""bench's ceiling: the FLOPs it divides by are those of the products a step (or a lockstep group) runs."""

from __future__ import annotations

import pytest
import torch

from iwae_cli.reports import bench


@pytest.fixture
def one_second_calls(monkeypatch):
    """`timed` made a clock-free stand-in: it runs the timed function once (recording the products' operand
    shapes) and says it took a second, so the ceiling is the FLOP count it divides."""
    shapes = []
    real_matmul = torch.matmul

    def matmul(a, b):
        shapes.append((tuple(a.shape), tuple(b.shape)))
        return real_matmul(a, b)

    def timed(fn, device, min_seconds, warmup=3):
        monkeypatch.setattr(torch, "matmul", matmul)
        fn()
        monkeypatch.setattr(torch, "matmul", real_matmul)
        return 1.0

    monkeypatch.setattr(bench, "timed", timed)
    return shapes


def test_a_group_ceiling_counts_and_runs_the_batched_products(one_second_calls) -> None:
    layer_shapes = [(100, 784, 200), (100, 200, 50)]
    one = bench.matmul_ceiling(layer_shapes, torch.device("cpu"), training=True, min_seconds=0)
    assert one == 3 * bench.forward_flops(layer_shapes)
    assert one_second_calls[0] == ((100, 784), (784, 200))  # one model: a plain product per layer
    one_second_calls.clear()
    four = bench.matmul_ceiling(layer_shapes, torch.device("cpu"), training=True, min_seconds=0, group=4)
    assert four == 4 * one
    assert one_second_calls[0] == ((4, 100, 784), (4, 784, 200))  # the group's: one bmm over the four models
    assert len(one_second_calls) == 3 * len(layer_shapes)  # forward, input gradient, weight gradient


def test_an_evaluation_ceiling_counts_the_forward_products_only(one_second_calls) -> None:
    layer_shapes = [(2000, 784, 200)]
    assert bench.matmul_ceiling(layer_shapes, torch.device("cpu"), training=False, min_seconds=0) == (
        2 * 2000 * 784 * 200
    )
    assert len(one_second_calls) == 1


def test_every_compiled_configuration_is_compiled_however_many_bench_times(caplog) -> None:
    """Past torch._dynamo's recompile limit a function runs eagerly without an error; bench compiles each
    configuration afresh, so with a limit of one, a second shape is still compiled, not run eagerly."""
    cpu = torch.device("cpu")
    # (dynamo's own patch: monkeypatch's undo deletes the setting from dynamo's config module)
    with torch._dynamo.config.patch(recompile_limit=1), caplog.at_level("WARNING"):
        for k in (1, 2):
            bench.bench_group(1, k, 4, cpu, size=2, min_seconds=0.01)
    assert not [r for r in caplog.records if "recompile_limit" in r.getMessage()], caplog.text
