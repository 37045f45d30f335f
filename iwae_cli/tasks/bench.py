"""`iwae bench`: training and evaluation speed against the machine's matmul ceiling (iwae_cli.reports.bench)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from iwae_cli.core.runtime import configure_torch
from iwae_cli.reports.bench import run_bench
from iwae_cli.specs.bench import bench_spec
from iwae_cli.specs.checks import whole_number
from iwae_cli.tasks.job import user_facing


@user_facing
def bench_task(cfg: DictConfig) -> dict[str, Any]:
    """Benchmark on CPU (and on CUDA when present); print a table and write outputs/bench/bench.json."""
    configure_torch(whole_number(cfg.get("threads"), "threads", allow_null=True))
    return run_bench(bench_spec(cfg))
