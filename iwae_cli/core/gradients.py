"""From an objective's estimate to the parameters' gradients, including an estimator whose encoder has a
surrogate loss of its own (STL, DReG)."""

from __future__ import annotations

import torch

from iwae_cli.core.model import IWAEModel
from iwae_cli.core.objectives import Estimate


def backward(model: IWAEModel, estimate: Estimate) -> None:
    """Fill .grad: from `loss` for all parameters, or, when the estimator has a separate encoder surrogate,
    the decoder's gradient from `loss` and the encoder's from `encoder_loss`."""
    if estimate.encoder_loss is None:
        estimate.loss.backward()
        return
    decoder, encoder = list(model.decoders.parameters()), list(model.encoders.parameters())
    decoder_grads = torch.autograd.grad(estimate.loss, decoder, retain_graph=True, allow_unused=True)
    encoder_grads = torch.autograd.grad(estimate.encoder_loss, encoder, allow_unused=True)
    for p, g in zip(decoder + encoder, decoder_grads + encoder_grads, strict=True):
        p.grad = torch.zeros_like(p) if g is None else g
