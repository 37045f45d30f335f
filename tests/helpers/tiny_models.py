"""Small float64 models and binary data shared by the model, objective and evaluation tests."""

from __future__ import annotations

import math

import torch

from iwae_cli.core.model import Architecture, IWAEModel


def random_model(arch: Architecture, seed: int = 0, scale: float = 1.0) -> IWAEModel:
    """A float64 model with all parameters (biases too) drawn at random, so that no term is trivially zero
    and q is a poor fit (the importance weights vary)."""
    torch.manual_seed(seed)
    model = IWAEModel(arch).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn_like(p) / math.sqrt(p.shape[-1]))
    return model


def binary_x(batch: int, x_dim: int, seed: int = 1) -> torch.Tensor:
    """A [batch, x_dim] float64 tensor of independent Bernoulli(0.4) pixels."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, x_dim, generator=g, dtype=torch.float64) < 0.4).double()
