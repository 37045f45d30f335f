"""The two Adam variants of PROTOCOL.md: the paper's text (`optim=paper`) and the authors' code (`original_code`)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from .errors import ConfigError


class OriginalCodeAdam(torch.optim.Optimizer):
    """Adam as written in the authors' optimizers.py, which differs from Kingma & Ba in three places:
    the second moment starts at ONES, eps is added to sqrt(v) (not inside it), and the bias correction is folded
    into the step size, alpha_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), with t counting from 1.
    """

    def __init__(self, params: Iterable, lr: float, betas: tuple[float, float], eps: float):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch's Optimizer API
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p] = {
                        "step": torch.zeros((), dtype=torch.float64),
                        "m": torch.zeros_like(p),
                        "v": torch.ones_like(p),
                    }
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            ms, vs = [s["m"] for s in states], [s["v"] for s in states]
            t = float(states[0]["step"]) + 1
            for s in states:
                s["step"] += 1
            torch._foreach_lerp_(ms, grads, 1 - beta1)  # m = beta1 m + (1 - beta1) g
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, 1 - beta2)  # v = beta2 v + (1 - beta2) g^2
            alpha = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            denom = torch._foreach_sqrt(vs)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, ms, denom, -alpha)


def build_optimizer(params: Iterable, optim_config, lr: float) -> torch.optim.Optimizer:
    """Adam per the `optim` config node; lr is the first stage's learning rate."""
    betas = (float(optim_config.beta1), float(optim_config.beta2))
    eps = float(optim_config.eps)
    if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps <= 0:
        raise ConfigError(f"optim needs 0 <= beta1, beta2 < 1 and eps > 0, got betas={betas} eps={eps}")
    if optim_config.variant == "torch":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, foreach=True)
    if optim_config.variant == "original_code":
        return OriginalCodeAdam(params, lr=lr, betas=betas, eps=eps)
    raise ConfigError(f"unknown optim.variant={optim_config.variant}; use optim=paper or optim=original_code")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (used at each stage of the schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
