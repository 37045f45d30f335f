"""Training objectives: the VAE and IWAE bounds of the paper, and later gradient estimators built on them.

Every objective maps (model, binary minibatch x, k, noise) to an `Estimate`: the bound per example (what we log)
and a scalar surrogate loss whose gradient is the estimator. The loss is minus the SUM of the bound over the
minibatch, as in the authors' code (iwae.py): Adam is scale-invariant except for its epsilon, so the paper's
eps = 1e-4 only means what it meant there on the summed gradient. `loss_reduction=mean` divides by the batch size
(see `build_objective`). For estimators that treat the encoder (phi) and
the decoder (theta) differently, `encoder_loss` carries the encoder's surrogate; the decoder then follows `loss`.

With log w_i = log p(x, h_i) - log q(h_i | x) and k samples h_i ~ q(h | x):
    L_VAE = 1/k sum_i log w_i                       (the ELBO averaged over k samples)
    L_k   = log 1/k sum_i w_i = logsumexp(log w) - log k
    L_a   = 1/(1 - a) log 1/k sum_i w_i^(1 - a)     (VR-alpha: L_0 = L_k, L_1 = L_VAE)

Each objective is declared once below (objective_registry.py): `@bound_objective` for a bound of the log weights (its
objective, and its eligibility for the compiled step, are derived), `@objective` for a whole estimator. Its
signature's parameters are what its conf/model/<name>.yaml sets, with the same defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from iwae_cli.core.model import IWAEModel
from iwae_cli.core.objective_registry import (
    LOG_WEIGHT_BOUNDS,
    Estimate,
    Noise,
    bind,
    bound_objective,
    objective,
)
from iwae_cli.core.setting_names import LOSS_REDUCTIONS
from iwae_cli.errors import ConfigError


def groups_divide_k(k: int, groups: int) -> None:
    """MIWAE and PIWAE split the k samples into M = groups groups of k/M."""
    if groups < 1 or k % groups:
        raise ConfigError(f"model.groups (M={groups}) must divide k={k}; e.g. k=50 model.groups=5")


def beta_in_unit_interval(k: int, beta: float) -> None:
    """CIWAE mixes L_VAE and L_k with weights beta and 1 - beta."""
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"model.beta must lie in [0, 1] for ciwae, got {beta}")


def alpha_in_unit_interval(k: int, alpha: float) -> None:
    """VR-alpha runs from L_k (alpha = 0) to L_VAE (alpha = 1). Li & Turner allow any real alpha, but for
    alpha < 0 it is no longer a lower bound of log p(x) and for alpha > 1 it is looser than the ELBO."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"model.alpha must lie in [0, 1] for vr (0: IWAE, 1: the VAE), got {alpha}")


# ---------------------------------------------------------------------------- bounds of the log weights


@bound_objective("vae")
def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """The VAE objective with k samples (Kingma & Welling 2014): L_VAE, the mean of the k log weights
    ([k, batch] -> [batch])."""
    return log_w.mean(0)


@bound_objective("iwae")
def importance_weighted_bound(log_w: torch.Tensor) -> torch.Tensor:
    """The IWAE objective (Burda et al. 2016, eq. 8): L_k = logsumexp_i(log w_i) - log k ([k, batch] -> [batch]).
    Its gradient is sum_i w~_i grad log w_i (eq. 14)."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


@bound_objective("miwae", check=groups_divide_k)
def multi_sample_bound(log_w: torch.Tensor, groups: int = 5) -> torch.Tensor:
    """MIWAE(M, K) (Rainforth et al. 2018): the mean over M = groups IWAE bounds of K = k/M samples each
    ([k, batch] -> [batch]). M = 1 is IWAE, M = k is the VAE."""
    k, batch = log_w.shape
    return importance_weighted_bound(log_w.reshape(groups, k // groups, batch).transpose(0, 1)).mean(0)


@bound_objective("ciwae", check=beta_in_unit_interval)
def combined_bound(log_w: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """CIWAE(beta) (Rainforth et al. 2018): beta L_VAE + (1 - beta) L_k over the same k samples
    ([k, batch] -> [batch])."""
    return beta * elbo(log_w) + (1 - beta) * importance_weighted_bound(log_w)


@bound_objective("vr", check=alpha_in_unit_interval)
def renyi_bound(log_w: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """VR-alpha (Li & Turner 2016), the k-sample Renyi bound L_a = 1/(1-a) log 1/k sum_i w_i^(1-a), in log
    space: (logsumexp((1 - a) log w) - log k) / (1 - a) ([k, batch] -> [batch]). It is the log of the power
    mean of order 1 - a of the w_i, so L_VAE <= L_a <= L_k; a = 0 is L_k exactly, and a -> 1 is L_VAE, taken
    as such at a = 1 (where the formula is 0/0). Its gradient is sum_i softmax((1 - a) log w)_i grad log w_i."""
    if alpha == 1:
        return elbo(log_w)
    return (torch.logsumexp((1 - alpha) * log_w, 0) - math.log(log_w.shape[0])) / (1 - alpha)


def normalised_weights(log_w: torch.Tensor) -> torch.Tensor:
    """w~_i = w_i / sum_j w_j, treated as constants (no gradient)."""
    return torch.softmax(log_w.detach(), 0)


# ---------------------------------------------------------- estimators with stop-gradients or encoder losses


@objective("stl")
def stl(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """ "Sticking the landing" (Roeder, Wu & Duvenaud 2017): L_k with the score-function term of log q dropped,
    i.e. q's parameters are constants inside log q, and its gradient flows only through the samples."""
    bound = importance_weighted_bound(model.log_weights(x, k, noise, stop_q_params=True))
    return Estimate(bound, -bound.sum())


@objective("dreg")
def dreg(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """IWAE-DReG (Tucker, Lawson, Gu & Maddison 2019): the decoder gets the IWAE gradient
    sum_i w~_i grad_theta log w_i; the encoder gets the doubly reparameterised
    sum_i w~_i^2 (d log w_i / d h_i) (d h_i / d phi), with q's parameters constant inside log q."""
    hs, _ = model.sample_posterior(x, k, noise)
    # Fresh graph nodes for the latents as log w sees them, so a hook can rescale exactly the path h -> log w.
    hs_seen = [h.view_as(h) for h in hs]
    log_w = model.log_joint(x, hs_seen) - model.log_posterior(x, hs_seen, stop_params=True)
    w = normalised_weights(log_w)
    for h in hs_seen:
        if h.requires_grad:  # (not under torch.no_grad, e.g. when a validation bound is measured)
            h.register_hook(
                lambda grad: grad * w.unsqueeze(-1)
            )  # w~ from the surrogate, times w~ again: w~^2
    surrogate = (w * log_w).sum(0)
    bound = importance_weighted_bound(log_w.detach())
    return Estimate(bound, -surrogate.sum())


@objective("piwae", check=groups_divide_k)
def piwae(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None, *, groups: int = 5) -> Estimate:
    """PIWAE(M, K) (Rainforth et al. 2018): the decoder maximises the IWAE bound L_k over all k samples, the
    encoder maximises MIWAE(M, k/M) over the same samples."""
    log_w = model.log_weights(x, k, noise)
    bound = importance_weighted_bound(log_w)
    return Estimate(bound, -bound.sum(), encoder_loss=-multi_sample_bound(log_w, groups).sum())


@objective("rws")
def rws(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """Reweighted wake-sleep (Bornschein & Bengio 2015), wake-phi update: the decoder follows the IWAE gradient;
    the encoder maximises sum_i w~_i log q(h_i | x) with the samples held fixed (no reparameterisation)."""
    hs, _ = model.sample_posterior(x, k, noise)
    log_w = model.log_joint(x, hs) - model.log_posterior(x, hs)
    bound = importance_weighted_bound(log_w)
    wake_phi = (normalised_weights(log_w) * model.log_posterior(x, [h.detach() for h in hs])).sum(0)
    return Estimate(bound, -bound.sum(), encoder_loss=-wake_phi.sum())


def check_reduction(reduction: str) -> str:
    """`loss_reduction` as given, if it is one of LOSS_REDUCTIONS (else ConfigError)."""
    if reduction not in LOSS_REDUCTIONS:
        raise ConfigError(
            f"loss_reduction must be sum (the authors' code) or mean, got loss_reduction={reduction}"
        )
    return reduction


def loss_divisor(reduction: str, batch_size: int) -> int:
    """What the minibatch's summed loss is divided by: 1 under `sum` (the authors' scale), the batch size under
    `mean`. Every training path (plain, compiled, lockstep) scales its loss by this one rule."""
    return 1 if check_reduction(reduction) == "sum" else batch_size


def reduced(estimate: Estimate, batch: int, reduction: str) -> Estimate:
    """The estimate with its losses divided by `loss_divisor` (the objectives return sums)."""
    divisor = loss_divisor(reduction, batch)
    if divisor == 1:
        return estimate
    encoder_loss = None if estimate.encoder_loss is None else estimate.encoder_loss / divisor
    return Estimate(estimate.bound, estimate.loss / divisor, encoder_loss)


def build_objective(
    name: str, given: Mapping[str, Any], k: int, reduction: str = "sum"
) -> Callable[[IWAEModel, torch.Tensor, int, Noise], Estimate]:
    """The objective `name` with the `given` parameters bound and checked against k, and its loss reduced over
    the minibatch as `reduction` says (sum: the authors' code; mean)."""
    declaration, params = bind(name, given, k)
    check_reduction(reduction)
    declared = declaration.objective
    return lambda model, x, k, noise=None: reduced(declared(model, x, k, noise, **params), len(x), reduction)


def build_log_weight_bound(
    name: str, given: Mapping[str, Any], k: int
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For an objective declared as a bound of the log weights, that bound with the `given` parameters bound, as
    a function of log w ([k, batch] -> [batch]) for the compiled step; None for the other objectives."""
    declaration, params = bind(name, given, k)
    bound = LOG_WEIGHT_BOUNDS.get(declaration.name)
    return None if bound is None else lambda log_w: bound(log_w, **params)
