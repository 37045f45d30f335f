"""The k-sample importance-weighted estimate of log p(x) (Section 5.1 of the paper).

Test NLL = -mean_x L_k(x), L_k = log 1/k sum_i w_i with k = 5000 (docs/protocol.md). L_k is a stochastic lower bound
of log p(x) that tightens as k grows. The k samples are processed in chunks and combined in float64 with
logsumexp, so memory stays bounded and the estimate does not depend on the chunk size.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from iwae_cli.core.model import IWAEModel
from iwae_cli.core.noise import binarize, draw_noise
from iwae_cli.core.runtime import progress_disabled

log = logging.getLogger(__name__)


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
    bar = tqdm(batches, disable=progress_disabled(progress), unit="batch", desc=f"L_{k}")
    started = time.perf_counter()
    for start in bar:
        if start == batch_size and bar.disable:  # no bar to watch: say once how long the wait will be
            log_expected_time(k, len(x_binary), len(batches), time.perf_counter() - started)
        x = x_binary[start : start + batch_size]
        noise = draw_noise(model, k, len(x), generator, x.device)
        total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
        for c in range(0, k, chunk):
            log_w = model.log_weights(x, min(chunk, k - c), [eps[c : c + chunk] for eps in noise])
            total = torch.logaddexp(total, torch.logsumexp(log_w.double(), 0))
        out[start : start + len(x)] = (total - math.log(k)).cpu()
    return out


def log_expected_time(k: int, examples: int, batches: int, first_batch_seconds: float) -> None:
    """One line for an estimate that runs without a progress bar (a table's jobs): its size, and the time the
    whole will take at the first minibatch's pace."""
    seconds = first_batch_seconds * batches
    expected = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    log.info("estimating L_%d on %d examples in %d minibatches: about %s at the first one's pace", k, examples,
             batches, expected)


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
