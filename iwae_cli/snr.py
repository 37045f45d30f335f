"""`iwae grad-snr`: signal-to-noise ratio of the encoder's and decoder's gradient estimates as k grows.

Rainforth et al. (2018, "Tighter variational bounds are not necessarily better") show that with the IWAE
gradient the encoder's SNR = |E[g]| / std(g) falls like 1/sqrt(k) while the decoder's rises like sqrt(k);
DReG (Tucker et al. 2019) restores an encoder SNR that grows with k. For a trained run we draw many gradient
estimates on one fixed binarised minibatch and report the mean, over parameters, of each parameter's SNR.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from .atomic import atomic_write_text
from .checks import whole_number
from .datasets import binarize
from .hydra_job import user_facing
from .model import IWAEModel
from .objectives import get_objective
from .runtime import progress_disabled
from .step import backward
from .task_inputs import load_named_run, progress_setting, split_tensor

log = logging.getLogger(__name__)


def gradient_samples(
    model: IWAEModel, objective, x: torch.Tensor, k: int, draws: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """`draws` independent gradient estimates, flattened per part: {"encoder": [draws, P_enc], "decoder": ...}."""
    parts = {"encoder": list(model.encoders.parameters()), "decoder": list(model.decoders.parameters())}
    out: dict[str, list[torch.Tensor]] = {name: [] for name in parts}
    for _ in range(draws):
        noise = [torch.randn(s, generator=generator, device=x.device) for s in model.noise_shapes(k, len(x))]
        model.zero_grad(set_to_none=True)
        backward(model, objective(model, x, k, noise))
        for name, params in parts.items():
            out[name].append(torch.cat([p.grad.reshape(-1) for p in params]).double())
    return {name: torch.stack(grads) for name, grads in out.items()}


def signal_to_noise(grads: torch.Tensor) -> dict[str, float]:
    """Per-parameter SNR |mean| / std over draws, summarised over the parameters that vary at all."""
    mean, std = grads.mean(0), grads.std(0)
    varying = std > 0
    snr = mean[varying].abs() / std[varying]
    return {
        "snr_mean": float(snr.mean()),
        "snr_median": float(snr.median()),
        "parameters": int(varying.sum()),
    }


def plot_snr(df: pd.DataFrame, path: Path) -> None:
    from .plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=False)
    for ax, part in zip(axes, ("encoder", "decoder"), strict=True):
        for objective, group in df[df.part == part].groupby("objective"):
            ax.plot(group.k, group.snr_mean, marker="o", label=objective)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel("mean gradient SNR")
        ax.set_title(f"{part} gradient")
        ax.legend()
    save_figure(fig, path)


@user_facing
def grad_snr_task(cfg: DictConfig) -> dict[str, Any]:
    """SNR of encoder and decoder gradients for each objective and k; writes grad_snr.csv and grad_snr.png."""
    whole_number(cfg.draws, "draws", minimum=2)
    for k in cfg.ks:
        whole_number(k, "ks[...]")
    run = load_named_run(cfg)
    device = next(run.model.parameters()).device
    generator = torch.Generator(device).manual_seed(int(cfg.seed))
    x = binarize(split_tensor(run.config.dataset.name, "train", cfg, int(cfg.examples)).to(device), generator)
    rows = []
    jobs = [(name, int(k)) for name in cfg.objectives for k in cfg.ks]
    for name, k in tqdm(jobs, disable=progress_disabled(progress_setting(cfg)), desc="grad-snr"):
        objective = get_objective(OmegaConf.create({"name": name}), k)  # its declared defaults
        for part, grads in gradient_samples(run.model, objective, x, k, int(cfg.draws), generator).items():
            rows.append({"objective": name, "k": k, "part": part, **signal_to_noise(grads)})
    df = pd.DataFrame(rows)
    atomic_write_text(run.path / "grad_snr.csv", df.to_csv(index=False))
    plot_snr(df, run.path / "grad_snr.png")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwritten: {run.path / 'grad_snr.csv'} and grad_snr.png")
    return {"rows": rows}
