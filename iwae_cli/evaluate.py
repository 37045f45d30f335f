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

from .checks import number, whole_number
from .datasets import binarize
from .errors import ConfigError
from .model import IWAEModel
from .runtime import progress_disabled

ACTIVITY_THRESHOLD = 0.01
AU_ENTRIES = ("active_units", "active_units_expected")  # metrics.json: the code's one-sample A_u; the paper's


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
    """A_u = Cov_x(E_{q(u|x)}[u]) for every unit of every stochastic layer (a list, h1 first), as the authors'
    code estimates it (the tables' numbers).

    Layer 1: the variance across examples of the encoder mean, which is E[h1 | x] exactly. Layer l > 1: the
    variance of the encoder mean given ONE sample of the layer below, mean_l(h_{l-1}) with h_{l-1} ~ q; see
    `expected_activity_statistics` for the paper's definition.
    """
    stats, h_prev = [], x_binary
    for encoder in model.encoders:
        mean, log_std = encoder(h_prev)
        stats.append(mean.var(0, unbiased=False).cpu())
        h_prev = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=generator, device=mean.device)
    return stats


@torch.no_grad()
def expected_activity_statistics(
    model: IWAEModel, x_binary: torch.Tensor, generator: torch.Generator, samples: int, chunk: int = 100
) -> list[torch.Tensor]:
    """A_u = Cov_x(E_{u ~ q(u|x)}[u]) by the paper's definition (Section 5.2), every layer (h1 first).

    E[h_l | x] = E_{h_1..h_{l-1} ~ q(.|x)}[mean_l(h_{l-1})] is averaged (in float64) over `samples` ancestral
    draws of the layers below, `chunk` draws at a time; A_u is its population variance over the examples.
    Layer 1 needs no sampling: E[h1 | x] = mean_1(x), so its A_u equals `activity_statistics`' exactly.
    S = active_units.posterior_samples = 1000, measured on the paper's 2-layer model, 500 images, fixed binarisation,
    two noise seeds and a S = 10,000 reference: after 3 passes of IWAE (k=5) the h2 count is 12-13 with the code's
    one sample, 10/9 at S = 100, 9 from S = 300 on (reference 9); the A_u's largest relative change from the
    reference is 2.7% at S = 100, 1.1% at S = 300 and 0.5% at S = 1000 (VAE after 3 passes: count 6 at every S,
    0.6% at S = 1000). At initialisation (q's std ~ 1, the worst case) S = 1000 is within 1.6% (median).
    """
    first_mean, first_log_std = model.encoders[0](x_binary)
    totals = [
        first_mean.new_zeros(first_mean.shape[0], u, dtype=torch.float64) for u in model.arch.latent_units[1:]
    ]
    for start in range(0, samples, chunk):
        eps = _normal((min(chunk, samples - start), *first_mean.shape), first_mean, generator)
        h = first_mean + torch.exp(first_log_std) * eps
        for layer, encoder in enumerate(model.encoders[1:]):
            mean, log_std = encoder(h)
            totals[layer] += mean.double().sum(0)
            if layer + 2 < model.n_layers:  # the top layer's own sample is not needed
                h = mean + torch.exp(log_std) * _normal(mean.shape, mean, generator)
    means = [first_mean.double(), *(total / samples for total in totals)]
    return [m.var(0, unbiased=False).to(first_mean.dtype).cpu() for m in means]


def _normal(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def active_masks(
    stats: list[torch.Tensor], threshold: float = ACTIVITY_THRESHOLD, inclusive: bool = False
) -> list[torch.Tensor]:
    """Boolean masks of the active units per layer: A_u > threshold (the paper's text, Section 5.2) or, with
    inclusive, A_u >= threshold (the authors' code, numpy searchsorted). Compared in float64, so the masks of
    A_u read back from metrics.json (float32 values written exactly) are the masks that were counted."""
    return [a.double() >= threshold if inclusive else a.double() > threshold for a in stats]


def count_active(
    stats: list[torch.Tensor], threshold: float = ACTIVITY_THRESHOLD, inclusive: bool = False
) -> list[int]:
    """Active units per layer under `active_masks`' rule."""
    return [int(mask.sum()) for mask in active_masks(stats, threshold, inclusive)]


def rule_text(threshold: float, inclusive: bool) -> str:
    """'A_u > 0.01' or 'A_u >= 0.01'."""
    return f"A_u {'>=' if inclusive else '>'} {threshold:g}"


def activity_entry(
    stats: list[torch.Tensor], threshold: float, inclusive: bool, examples: int, samples: int | None = None
) -> dict:
    """The metrics.json record of one A_u estimate: counts under the rule, every A_u, and how it was made
    (posterior_samples: S of `expected_activity_statistics`; absent for the one-sample estimate)."""
    counts = count_active(stats, threshold, inclusive)
    entry = {
        "counts": counts,
        "label": units_label(counts),
        "threshold": threshold,
        "inclusive": inclusive,
        "rule": rule_text(threshold, inclusive),
        "examples": examples,
        "A_u": [a.tolist() for a in stats],
    }
    return entry if samples is None else {**entry, "posterior_samples": samples}


def entry_masks(entry: dict) -> list[torch.Tensor]:
    """The active-unit masks of a recorded `activity_entry`, under the rule it was recorded with (entries from
    before `inclusive` existed used the strict rule)."""
    stats = [torch.tensor(a, dtype=torch.float64) for a in entry["A_u"]]
    return active_masks(stats, float(entry["threshold"]), bool(entry.get("inclusive", False)))


def recorded_matches(entry: dict | None, expected: dict) -> bool:
    """Whether a metrics.json entry exists and was made with the `expected` settings (None values: any).
    A missing `inclusive` reads as false, the only rule before it was recorded."""
    if not entry:
        return False
    return all(
        v is None or entry.get(k, False if k == "inclusive" else None) == v for k, v in expected.items()
    )


def check_flag(value: object, name: str) -> bool:
    """A true/false setting, else ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {name}={value}")
    return value


def activity_settings(au_cfg) -> dict:
    """The checked `active_units` settings that an entry records (and is matched against)."""
    return {
        "threshold": number(au_cfg.threshold, "threshold"),
        "inclusive": check_flag(au_cfg.get("inclusive", False), "active_units.inclusive"),
        "examples": whole_number(au_cfg.examples, "examples"),
        "posterior_samples": whole_number(au_cfg.posterior_samples, "active_units.posterior_samples"),
    }


def activity_wanted(name: str, settings: dict) -> dict:
    """What a recorded entry `name` (one of AU_ENTRIES) must match; the one-sample estimate has no S."""
    return settings if name == "active_units_expected" else {**settings, "posterior_samples": None}


def units_label(counts: list[int]) -> str:
    """'16+5' style label of per-layer counts."""
    return "+".join(str(c) for c in counts)


def plot_activity_histogram(
    stats: list[torch.Tensor], threshold: float, path: Path, inclusive: bool = False
) -> None:
    """A histogram of log A_u per layer, with the activity threshold marked (written atomically)."""
    import matplotlib.pyplot as plt

    from .plots import save_figure  # matplotlib is imported only when a plot is drawn

    fig, axes = plt.subplots(1, len(stats), figsize=(4.5 * len(stats), 3.2), squeeze=False)
    counts = count_active(stats, threshold, inclusive)
    for layer, (ax, a) in enumerate(zip(axes[0], stats, strict=True), start=1):
        ax.hist(torch.log(a.clamp_min(1e-12)).numpy(), bins=30, color="tab:blue")
        ax.axvline(math.log(threshold), color="tab:red", linestyle="--", label=f"log {threshold}")
        ax.set_title(f"layer {layer}: {counts[layer - 1]} of {len(a)} units active")
        ax.set_xlabel("log A_u")
        ax.legend()
    save_figure(fig, path)
