"""Every random draw a model's step or estimate takes, in one place: the dynamic binarisation of the images and
the reparameterisation noise of the stochastic layers.

Objectives are pure functions of explicit noise (objective_registry.py); whoever calls them draws that noise
here, from a generator it owns, in a fixed order. So the same generator state gives the same numbers, whichever
path (the training step, a lockstep group, validation, evaluation, gradient SNR) draws them.
"""

from __future__ import annotations

import torch

from iwae_cli.core.model import IWAEModel


class FixedBinary(torch.Tensor):
    """Images of a dataset whose binarisation is part of its files (binarization="fixed"): :func:`binarize`
    returns them as they are, drawing nothing.

    The mark travels with the tensor through slicing, ``.to(device)`` and ``torch.cat``, so every place that
    binarises (the training step, validation, evaluation, active units, gradient SNR) treats fixed data right
    without being told which dataset it holds.
    """


def binarize(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dynamic binarisation: each pixel becomes 1 with probability equal to its intensity.

    As in the authors' code, ``(uniform <= intensity)``; the uniforms come from ``generator``, which must live
    on ``x.device``. The result is a plain tensor with the dtype of ``x``. :class:`FixedBinary` images are
    returned as they are and ``generator`` is left untouched: redrawing them would not be the identity
    (``uniform <= 0`` holds when a uniform is exactly 0) and would shift every later draw.
    """
    if isinstance(x, FixedBinary):
        return x.as_subclass(torch.Tensor)
    uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (uniform <= x).to(x.dtype)


def draw_noise(
    model: IWAEModel, k: int, batch: int, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    """Standard normal noise for k samples of every stochastic layer (h1 first), [k, batch, units] each."""
    return [torch.randn(shape, generator=generator, device=device) for shape in model.noise_shapes(k, batch)]


def draw_minibatch(
    model: IWAEModel, intensities: torch.Tensor, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A training step's randomness, in a fixed order from the run's generator: the binarisation, then the
    reparameterisation noise of every stochastic layer."""
    x = binarize(intensities, generator)
    return x, draw_noise(model, k, len(x), generator, x.device)
