"""`iwae bench`: how close training and evaluation come to this machine's own matmul rate.

FLOPs are counted from the layer shapes: every nn.Linear that a step runs contributes 2 * rows * in * out for
its forward product, and a training step three times that (forward, gradient of the input, gradient of the
weight). The ceiling is the rate at which this machine runs exactly those products, timed alone.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from iwae_cli.core.atomic import atomic_write_json
from iwae_cli.core.estimators import log_likelihood_estimates
from iwae_cli.core.model import Architecture, IWAEModel, build_model
from iwae_cli.core.objectives import build_log_weight_bound, build_objective
from iwae_cli.core.optim import OptimSpec, build_optimizer
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import first_line
from iwae_cli.reports.projection import project_hours
from iwae_cli.training.lockstep_step import GroupStep, Member
from iwae_cli.training.step import CompiledStep, train_step

log = logging.getLogger(__name__)

X_DIM = get_dataset("mnist").n_pixels  # the input size the timings use
ARCHITECTURES = {  # conf/layers/1.yaml and 2.yaml
    1: Architecture((50,), ((200, 200),), ((200, 200),), X_DIM),
    2: Architecture((100, 50), ((200, 200), (100, 100)), ((200, 200), (100, 100)), X_DIM),
}
PAPER_ADAM = OptimSpec("torch", (0.9, 0.999), 1e-4)  # conf/optim/paper.yaml


@dataclass(frozen=True)
class BenchSpec:
    """What `iwae bench` times: training steps at each depth and k (minibatch `batch`), lockstep groups of each
    size, the k=eval_k evaluation of eval_examples images (eval_chunk samples at a time), each for at least
    min_seconds, on each device; the report goes to `out`."""

    devices: tuple[torch.device, ...]
    depths: tuple[int, ...]
    ks: tuple[int, ...]
    batch: int
    group_sizes: tuple[int, ...]
    eval_k: int
    eval_examples: int
    eval_chunk: int
    min_seconds: float
    out: Path


def fresh_compiler() -> None:
    """Forget every function compiled so far. Each configuration bench times recompiles the same step
    function for new shapes; past torch._dynamo's recompile limit (8 per function) it would silently run the
    rest eagerly, and their rows would time the uncompiled step under a compiled label."""
    torch._dynamo.reset()


def linear_shapes(model: IWAEModel, run: Callable[[], Any]) -> list[tuple[int, int, int]]:
    """(rows, in, out) of every nn.Linear product that `run()` performs, recorded with forward hooks."""
    shapes: list[tuple[int, int, int]] = []

    def hook(module: nn.Linear, inputs, _output):
        shapes.append((inputs[0].numel() // module.in_features, module.in_features, module.out_features))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return shapes


def forward_flops(shapes: list[tuple[int, int, int]]) -> float:
    return float(sum(2 * r * i * o for r, i, o in shapes))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device, min_seconds: float, warmup: int = 3) -> float:
    """Seconds per call of fn, over enough calls to last at least min_seconds."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 5 == 0:
            synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                return elapsed / calls


def matmul_ceiling(
    shapes: list[tuple[int, int, int]], device: torch.device, training: bool, min_seconds: float, group: int = 1
) -> float:
    """FLOP/s of this machine on exactly the products of one step (forward, and for training both backward ones).
    group > 1: the batched products a lockstep group of that many models runs (vmap turns each layer's product
    into one bmm over the stacked models), whose rate differs from `group` separate products."""
    stack = (group,) if group > 1 else ()  # matmul: mm for one model, bmm for a stack
    products = []
    for rows, n_in, n_out in shapes:
        x, w = torch.randn(*stack, rows, n_in, device=device), torch.randn(*stack, n_in, n_out, device=device)
        g = torch.randn(*stack, rows, n_out, device=device)
        products.append((x, w, g))

    def step():
        for x, w, g in products:
            torch.matmul(x, w)
            if training:
                torch.matmul(g, w.transpose(-1, -2))
                torch.matmul(x.transpose(-1, -2), g)

    flops = forward_flops(shapes) * group * (3 if training else 1)
    return flops / timed(step, device, min_seconds)


def row(
    what: str, layers: int, k: int, batch: int, ms: float, flops_per_second: float, ceiling: float
) -> dict[str, Any]:
    """One line of the report: ms per model and step (evaluation: per test image), useful GFLOP/s, the ceiling
    and their ratio."""
    return {
        "what": what,
        "layers": layers,
        "k": k,
        "batch": batch,
        "step_ms": ms,
        "gflops": flops_per_second / 1e9,
        "ceiling_gflops": ceiling / 1e9,
        "fraction": flops_per_second / ceiling,
    }


def bench_training(
    layers: int, k: int, batch: int, device: torch.device, min_seconds: float
) -> list[dict[str, Any]]:
    """One configuration's training step, plain and compiled: time, useful GFLOP/s and the ceiling at its shapes."""
    model = build_model(ARCHITECTURES[layers], torch.full((X_DIM,), 0.13), seed=0).to(device)
    generator = torch.Generator(device).manual_seed(0)
    x = torch.rand(batch, X_DIM, generator=generator, device=device)
    shapes = linear_shapes(model, lambda: model.log_weights(x, k))
    flops = 3 * forward_flops(shapes)
    ceiling = matmul_ceiling(shapes, device, training=True, min_seconds=min_seconds)

    objective = build_objective("iwae", {}, k)
    optimizer = build_optimizer(model.parameters(), PAPER_ADAM, 1e-3)
    timings = [
        (
            "train",
            timed(lambda: train_step(model, optimizer, objective, x, k, generator), device, min_seconds),
        )
    ]
    optimizer = build_optimizer(model.parameters(), PAPER_ADAM, 1e-3)
    try:
        fresh_compiler()
        compiled_step = CompiledStep(model, optimizer, build_log_weight_bound("iwae", {}, k), k, batch)
        timings.append(("train compiled", timed(lambda: compiled_step(x, generator), device, min_seconds)))
    except Exception as e:  # as compile=auto training does: where torch.compile fails, the plain step only
        log.warning("torch.compile failed on %s (%s); no compiled figures", device, first_line(e))
    return [row(what, layers, k, batch, seconds * 1e3, flops / seconds, ceiling) for what, seconds in timings]


def bench_evaluation(
    layers: int, k: int, examples: int, chunk: int, device: torch.device, min_seconds: float
) -> dict[str, Any]:
    """k-sample NLL evaluation (20 examples a minibatch, `chunk` samples at a time): time per test example."""
    model = build_model(ARCHITECTURES[layers], torch.full((X_DIM,), 0.13), seed=0).to(device)
    generator = torch.Generator(device).manual_seed(0)
    x = (torch.rand(examples, X_DIM, generator=generator, device=device) < 0.13).float()
    batch = 20
    shapes = linear_shapes(model, lambda: model.log_weights(x[:batch], chunk))
    flops = forward_flops(shapes) * (k / chunk) * (examples / batch)
    seconds = timed(
        lambda: log_likelihood_estimates(model, x, k, generator, batch, chunk, progress=False),
        device,
        min_seconds,
        warmup=1,
    )
    ceiling = matmul_ceiling(shapes, device, training=False, min_seconds=min_seconds)
    return row(f"eval k={k}", layers, k, batch, seconds / examples * 1e3, flops / seconds, ceiling)


def bench_group(
    layers: int, k: int, batch: int, device: torch.device, size: int, min_seconds: float
) -> dict[str, Any]:
    """A lockstep group of `size` IWAE models (training/lockstep_step.py, compiled where torch.compile works): time per
    model and step, so the rows compare with the solo ones."""
    models = [
        build_model(ARCHITECTURES[layers], torch.full((X_DIM,), 0.13), seed=s).to(device) for s in range(size)
    ]
    bound = build_log_weight_bound("iwae", {}, k)
    members = [
        Member(
            m,
            build_optimizer(m.parameters(), PAPER_ADAM, 1e-3),
            torch.Generator(device).manual_seed(s),
            bound,
            1,
        )
        for s, m in enumerate(models)
    ]
    x = torch.rand(batch, X_DIM, generator=torch.Generator(device).manual_seed(0), device=device)
    shapes = linear_shapes(models[0], lambda: models[0].log_weights(x, k))
    flops = 3 * forward_flops(shapes) * size
    try:
        fresh_compiler()
        step = GroupStep(members, PAPER_ADAM, 1e-3, k, batch, compiled=True)
    except Exception as e:  # as compile=auto training does: where torch.compile fails, the plain step
        log.warning(
            "torch.compile failed on %s (%s); the group step is timed uncompiled", device, first_line(e)
        )
        step = GroupStep(members, PAPER_ADAM, 1e-3, k, batch, compiled=False)
    seconds = timed(lambda: step(x), device, min_seconds)
    ceiling = matmul_ceiling(shapes, device, training=True, min_seconds=min_seconds, group=size)
    return row(f"train group x{size}", layers, k, batch, seconds / size * 1e3, flops / seconds, ceiling)


def run_bench(spec: BenchSpec) -> dict[str, Any]:
    """Time everything `spec` names on each device; print a table per device and write the report (JSON)."""
    report: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "devices": {},
    }
    for device in spec.devices:
        results = [
            row
            for depth in spec.depths
            for k in spec.ks
            for row in bench_training(depth, k, spec.batch, device, spec.min_seconds)
        ]
        results += [
            bench_group(depth, k, spec.batch, device, size, spec.min_seconds)
            for depth in spec.depths
            for k in spec.ks
            for size in spec.group_sizes
        ]
        results += [
            bench_evaluation(depth, spec.eval_k, spec.eval_examples, spec.eval_chunk, device, spec.min_seconds)
            for depth in spec.depths
        ]
        name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
        projection = project_hours(results, spec.batch)
        report["devices"][name] = {"results": results, "paper_schedule_projection": projection}
        table = pd.DataFrame(results)
        print(f"\n== {name} ({torch.get_num_threads()} CPU threads) ==")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(projection_text(projection))
    atomic_write_json(spec.out, report)
    print(f"\nwritten: {spec.out}")
    return report


def projection_text(projection: dict[str, float | None]) -> str:
    """The projection as lines for the terminal ("not timed" where bench lacked a shape it needs)."""

    def shown(value: float | None, unit: str) -> str:
        return "not timed (needs depths=[1,2] ks=[1,5,50])" if value is None else f"{value:.2f} {unit}"

    return "\n".join(
        [
            "projected at the paper's schedule (3,280 passes; projection.py):",
            f"  Table 1, 20 models one at a time:        {shown(projection['table1_solo_hours'], 'h')}",
            f"  Table 1, lockstep groups (group=true):   {shown(projection['table1_grouped_hours'], 'h')}",
            f"  Table 2, two switch runs (3^7 passes):   {shown(projection['table2_hours'], 'h')}",
            f"  k=5000 test NLL of all 22 models:        {shown(projection['eval_minutes_all_models'], 'min')}",
        ]
    )
