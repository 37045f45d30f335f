"""Training objectives: the VAE and IWAE bounds of the paper, and later gradient estimators built on them.

Every objective maps (model, binary minibatch x, k, noise) to an `Estimate`: the bound per example (what we log)
and a scalar surrogate loss whose gradient is the estimator. For estimators that treat the encoder (phi) and
the decoder (theta) differently, `encoder_loss` carries the encoder's surrogate; the decoder then follows `loss`.

With log w_i = log p(x, h_i) - log q(h_i | x) and k samples h_i ~ q(h | x):
    L_VAE = 1/k sum_i log w_i                       (the ELBO averaged over k samples)
    L_k   = log 1/k sum_i w_i = logsumexp(log w) - log k
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .model import IWAEModel


@dataclass
class Estimate:
    """One minibatch's bound per example ([batch]) and the surrogate loss(es) to differentiate."""

    bound: torch.Tensor
    loss: torch.Tensor
    encoder_loss: torch.Tensor | None = None


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """L_VAE: the mean of the k log weights ([k, batch] -> [batch])."""
    return log_w.mean(0)


def importance_weighted_bound(log_w: torch.Tensor) -> torch.Tensor:
    """L_k = logsumexp_i(log w_i) - log k ([k, batch] -> [batch]). Its gradient is sum_i w~_i grad log w_i."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def multi_sample_bound(log_w: torch.Tensor, groups: int) -> torch.Tensor:
    """MIWAE(M, K): the mean over M groups of the K-sample IWAE bound, with M*K = k ([k, batch] -> [batch])."""
    k, batch = log_w.shape
    return importance_weighted_bound(log_w.reshape(groups, k // groups, batch).transpose(0, 1)).mean(0)


def combined_bound(log_w: torch.Tensor, beta: float) -> torch.Tensor:
    """CIWAE's beta L_VAE + (1 - beta) L_k over the same k samples ([k, batch] -> [batch])."""
    return beta * elbo(log_w) + (1 - beta) * importance_weighted_bound(log_w)


def normalised_weights(log_w: torch.Tensor) -> torch.Tensor:
    """w~_i = w_i / sum_j w_j, treated as constants (no gradient)."""
    return torch.softmax(log_w.detach(), 0)


Noise = Sequence[torch.Tensor] | None


def vae(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """The VAE objective with k samples (Kingma & Welling 2014): maximise L_VAE."""
    bound = elbo(model.log_weights(x, k, noise))
    return Estimate(bound, -bound.mean())


def iwae(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """The IWAE objective (Burda et al. 2016): maximise L_k."""
    bound = importance_weighted_bound(model.log_weights(x, k, noise))
    return Estimate(bound, -bound.mean())


def stl(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """ "Sticking the landing" (Roeder, Wu & Duvenaud 2017): L_k with the score-function term of log q dropped,
    i.e. q's parameters are constants inside log q, and its gradient flows only through the samples."""
    bound = importance_weighted_bound(model.log_weights(x, k, noise, stop_q_params=True))
    return Estimate(bound, -bound.mean())


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
    return Estimate(bound, -surrogate.mean())


def miwae(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None, groups: int = 1) -> Estimate:
    """MIWAE(M, K) (Rainforth et al. 2018): the k samples form M = `groups` IWAE bounds of K = k/M samples each;
    maximise their mean. M = 1 is IWAE, M = k is the VAE."""
    bound = multi_sample_bound(model.log_weights(x, k, noise), groups)
    return Estimate(bound, -bound.mean())


def ciwae(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None, beta: float = 0.5) -> Estimate:
    """CIWAE(beta) (Rainforth et al. 2018): maximise beta L_VAE + (1 - beta) L_k over the same k samples."""
    bound = combined_bound(model.log_weights(x, k, noise), beta)
    return Estimate(bound, -bound.mean())


def piwae(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None, groups: int = 1) -> Estimate:
    """PIWAE(M, K) (Rainforth et al. 2018): the decoder maximises the IWAE bound L_k over all k samples, the
    encoder maximises MIWAE(M, k/M) over the same samples."""
    log_w = model.log_weights(x, k, noise)
    bound = importance_weighted_bound(log_w)
    return Estimate(bound, -bound.mean(), encoder_loss=-multi_sample_bound(log_w, groups).mean())


def rws(model: IWAEModel, x: torch.Tensor, k: int, noise: Noise = None) -> Estimate:
    """Reweighted wake-sleep (Bornschein & Bengio 2015), wake-phi update: the decoder follows the IWAE gradient;
    the encoder maximises sum_i w~_i log q(h_i | x) with the samples held fixed (no reparameterisation)."""
    hs, _ = model.sample_posterior(x, k, noise)
    log_w = model.log_joint(x, hs) - model.log_posterior(x, hs)
    bound = importance_weighted_bound(log_w)
    wake_phi = (normalised_weights(log_w) * model.log_posterior(x, [h.detach() for h in hs])).sum(0)
    return Estimate(bound, -bound.mean(), encoder_loss=-wake_phi.mean())


Objective = Callable[..., Estimate]
OBJECTIVES: dict[str, Objective] = {
    "vae": vae,
    "iwae": iwae,
    "stl": stl,
    "dreg": dreg,
    "miwae": miwae,
    "ciwae": ciwae,
    "piwae": piwae,
    "rws": rws,
}


def _objective_parameters(model_config, k: int) -> dict:
    """The extra parameters of the objective named by the `model` config node, checked against k."""
    name = model_config.name
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective model={name}; choose one of {', '.join(OBJECTIVES)}")
    kwargs = {}
    if name in ("miwae", "piwae"):
        groups = int(model_config.groups)
        if groups < 1 or k % groups:
            raise ConfigError(
                f"model={name} needs model.groups (M={groups}) to divide k={k}; e.g. k=50 model.groups=5"
            )
        kwargs["groups"] = groups
    if name == "ciwae":
        beta = float(model_config.beta)
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"model.beta must lie in [0, 1] for ciwae, got {beta}")
        kwargs["beta"] = beta
    return kwargs


def get_objective(model_config, k: int) -> Callable[[IWAEModel, torch.Tensor, int, Noise], Estimate]:
    """The objective named by the `model` config node, with its extra parameters bound and checked against k."""
    kwargs = _objective_parameters(model_config, k)
    objective = OBJECTIVES[model_config.name]
    return lambda model, x, k, noise=None: objective(model, x, k, noise, **kwargs)


# Objectives whose loss is minus a bound of the log weights, differentiated as it stands (no stop-gradients, no
# separate encoder loss): for these the compiled training step (step.py) needs only this function.
LOG_WEIGHT_BOUNDS: dict[str, Callable[..., torch.Tensor]] = {
    "vae": elbo,
    "iwae": importance_weighted_bound,
    "miwae": multi_sample_bound,
    "ciwae": combined_bound,
}


def log_weight_bound(model_config, k: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For the objectives of LOG_WEIGHT_BOUNDS, their bound as a function of log w ([k, batch] -> [batch]);
    None for the others."""
    kwargs = _objective_parameters(model_config, k)
    bound = LOG_WEIGHT_BOUNDS.get(model_config.name)
    return None if bound is None else lambda log_w: bound(log_w, **kwargs)
