"""Gradient signal-to-noise ratio of the encoder's and decoder's gradient estimates as k grows.

Rainforth et al. (2018, "Tighter variational bounds are not necessarily better") show that with the IWAE
gradient the encoder's SNR = |E[g]| / std(g) falls like 1/sqrt(k) while the decoder's rises like sqrt(k);
DReG (Tucker et al. 2019) restores an encoder SNR that grows with k. For a trained run we draw many gradient
estimates on one fixed binarised minibatch and report the mean, over parameters, of each parameter's SNR.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from iwae_cli.core.gradients import backward
from iwae_cli.core.model import IWAEModel
from iwae_cli.core.noise import binarize, draw_noise
from iwae_cli.core.objectives import build_objective
from iwae_cli.core.runtime import progress_disabled


@dataclass(frozen=True)
class SnrSpec:
    """Each objective (with its declared defaults) at each k: `draws` gradient estimates on `examples` training
    images binarised once, all draws from `seed`."""

    objectives: tuple[str, ...]
    ks: tuple[int, ...]
    draws: int
    examples: int
    seed: int
    progress: bool | None


def measure_snr(model: IWAEModel, intensities: torch.Tensor, spec: SnrSpec) -> pd.DataFrame:
    """One row per objective, k and part (encoder, decoder): the SNR summary of `signal_to_noise`."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(spec.seed)
    x = binarize(intensities.to(device), generator)
    rows = []
    jobs = [(name, k) for name in spec.objectives for k in spec.ks]
    for name, k in tqdm(jobs, disable=progress_disabled(spec.progress), desc="grad-snr"):
        objective = build_objective(name, {}, k)
        for part, grads in gradient_samples(model, objective, x, k, spec.draws, generator).items():
            rows.append({"objective": name, "k": k, "part": part, **signal_to_noise(grads)})
    return pd.DataFrame(rows)


def gradient_samples(
    model: IWAEModel, objective, x: torch.Tensor, k: int, draws: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """`draws` independent gradient estimates, flattened per part: {"encoder": [draws, P_enc], "decoder": ...}."""
    parts = {"encoder": list(model.encoders.parameters()), "decoder": list(model.decoders.parameters())}
    out: dict[str, list[torch.Tensor]] = {name: [] for name in parts}
    for _ in range(draws):
        noise = draw_noise(model, k, len(x), generator, x.device)
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
