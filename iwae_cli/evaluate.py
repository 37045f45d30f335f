"""Evaluation: the k-sample importance-weighted estimate of log p(x), and active units.

Test NLL = -mean_x L_k(x), L_k = log 1/k sum_i w_i with k = 5000 (PROTOCOL.md). L_k is a stochastic lower bound
of log p(x) that tightens as k grows. The k samples are processed in chunks and combined in float64 with
logsumexp, so memory stays bounded and the estimate does not depend on the chunk size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .datasets import binarize
from .model import IWAEModel
from .runtime import progress_disabled

ACTIVITY_THRESHOLD = 0.01


@dataclass(frozen=True)
class NLLEstimate:
    """Test NLL in nats with its standard error over examples, the k used and the number of examples."""

    nll: float
    standard_error: float
    k: int
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def log_likelihood_estimates(
    model: IWAEModel,
    x_binary: torch.Tensor,
    k: int,
    generator: torch.Generator,
    batch_size: int = 20,
    chunk: int = 100,
    progress: bool | None = None,
) -> torch.Tensor:
    """L_k(x) for every row of x_binary, as a float64 [n] tensor.

    For each minibatch all k x units noise values are drawn at once (so the chunk size cannot change which
    samples are used); the decoder then runs on `chunk` samples at a time and the partial logsumexps are combined.
    """
    out = torch.empty(len(x_binary), dtype=torch.float64)
    batches = range(0, len(x_binary), batch_size)
    for start in tqdm(batches, disable=progress_disabled(progress), unit="batch", desc=f"L_{k}"):
        x = x_binary[start : start + batch_size]
        noise = [torch.randn(s, generator=generator, device=x.device) for s in model.noise_shapes(k, len(x))]
        total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
        for c in range(0, k, chunk):
            log_w = model.log_weights(x, min(chunk, k - c), [eps[c : c + chunk] for eps in noise])
            total = torch.logaddexp(total, torch.logsumexp(log_w.double(), 0))
        out[start : start + len(x)] = (total - math.log(k)).cpu()
    return out


def estimate_nll(
    model: IWAEModel,
    x_intensities: torch.Tensor,
    k: int,
    seed: int,
    batch_size: int = 20,
    chunk: int = 100,
    progress: bool | None = None,
) -> tuple[NLLEstimate, torch.Tensor]:
    """-mean L_k over a dynamically binarised split (binarisation and noise seeded with `seed`).

    Returns the estimate and the per-example L_k values (for paired comparisons between models).
    """
    generator = torch.Generator(x_intensities.device).manual_seed(seed)
    x_binary = binarize(x_intensities, generator)
    per_example = log_likelihood_estimates(model, x_binary, k, generator, batch_size, chunk, progress)
    n = len(per_example)
    se = float(per_example.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return NLLEstimate(-float(per_example.mean()), se, k, n), per_example


@torch.no_grad()
def activity_statistics(
    model: IWAEModel, x_binary: torch.Tensor, generator: torch.Generator
) -> list[torch.Tensor]:
    """A_u = Cov_x(E_{q(u|x)}[u]) for every unit of every stochastic layer (a list, h1 first).

    As in the authors' code: the variance across examples of the encoder mean; for layer l > 1 the encoder mean
    given one sample of the layer below.
    """
    stats, h_prev = [], x_binary
    for encoder in model.encoders:
        mean, log_std = encoder(h_prev)
        stats.append(mean.var(0, unbiased=False).cpu())
        h_prev = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=generator, device=mean.device)
    return stats


def count_active(stats: list[torch.Tensor], threshold: float = ACTIVITY_THRESHOLD) -> list[int]:
    """Units with A_u above the threshold, per layer."""
    return [int((a > threshold).sum()) for a in stats]


def units_label(counts: list[int]) -> str:
    """'16+5' style label of per-layer counts."""
    return "+".join(str(c) for c in counts)


def plot_activity_histogram(stats: list[torch.Tensor], threshold: float, path: Path) -> None:
    """A histogram of log A_u per layer, with the activity threshold marked (written atomically)."""
    import matplotlib.pyplot as plt

    from .plots import save_figure  # matplotlib is imported only when a plot is drawn

    fig, axes = plt.subplots(1, len(stats), figsize=(4.5 * len(stats), 3.2), squeeze=False)
    for layer, (ax, a) in enumerate(zip(axes[0], stats, strict=True), start=1):
        ax.hist(torch.log(a.clamp_min(1e-12)).numpy(), bins=30, color="tab:blue")
        ax.axvline(math.log(threshold), color="tab:red", linestyle="--", label=f"log {threshold}")
        ax.set_title(f"layer {layer}: {int((a > threshold).sum())} of {len(a)} units active")
        ax.set_xlabel("log A_u")
        ax.legend()
    save_figure(fig, path)
