"""Active units (Section 5.2): A_u = Cov_x(E_{q(u|x)}[u]) per latent unit, the masks and counts of the units
above the activity threshold, and the metrics.json record of one estimate."""

from __future__ import annotations

import torch

from iwae_cli.core.model import IWAEModel
from iwae_cli.core.provenance import checkpoint_matches

ACTIVITY_THRESHOLD = 0.01
AU_ENTRIES = ("active_units", "active_units_expected")  # metrics.json: the code's one-sample A_u; the paper's


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
    The default S = active_units.posterior_samples = 1000 is within 0.5% of S = 10,000 (docs/protocol.md says
    how that was measured).
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
    A missing `inclusive` reads as false, the only rule before it was recorded; an expected `checkpoint` (the
    passes and finished state of the model, core/provenance.py) must be the one the entry came from, so a result
    of an older checkpoint is computed again."""
    if not entry:
        return False
    settings = {k: v for k, v in expected.items() if k != "checkpoint"}
    if "checkpoint" in expected and not checkpoint_matches(entry, expected["checkpoint"]):
        return False
    return all(
        v is None or entry.get(k, False if k == "inclusive" else None) == v for k, v in settings.items()
    )


def units_label(counts: list[int]) -> str:
    """'16+5' style label of per-layer counts."""
    return "+".join(str(c) for c in counts)
