"""`iwae bench`'s spec (iwae_cli.reports.bench.BenchSpec), built once from its config."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from iwae_cli.core.runtime import resolve_device
from iwae_cli.errors import ConfigError
from iwae_cli.reports.bench import ARCHITECTURES, BenchSpec
from iwae_cli.specs.checks import number, whole_number


def bench_spec(cfg: DictConfig) -> BenchSpec:
    """The checked bench settings; device=auto times the CPU and, where present, CUDA."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if cfg.device != "auto":
        devices = [resolve_device(cfg.device)]
    return BenchSpec(
        devices=tuple(devices),
        depths=tuple(depth(d) for d in cfg.depths),
        ks=tuple(whole_number(k, "ks[...]") for k in cfg.ks),
        batch=whole_number(cfg.batch, "batch"),
        group_sizes=tuple(whole_number(g, "group_sizes[...]") for g in cfg.group_sizes),
        eval_k=whole_number(cfg.eval_k, "eval_k"),
        eval_examples=whole_number(cfg.eval_examples, "eval_examples"),
        eval_chunk=whole_number(cfg.eval.chunk, "eval.chunk"),
        min_seconds=number(cfg.min_seconds, "min_seconds"),
        out=Path(cfg.output_root) / "bench" / "bench.json",
    )


def depth(value: object) -> int:
    """A depth bench has an architecture for (the paper's 1 and 2 stochastic layers), else ConfigError."""
    if value not in ARCHITECTURES or isinstance(value, bool):
        raise ConfigError(f"depths lists stochastic layers, {' or '.join(map(str, ARCHITECTURES))}; got {value}")
    return int(value)
