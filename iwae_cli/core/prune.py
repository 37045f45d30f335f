"""Removing inactive latent units from a trained model, as the authors' code does before its pruned test NLL.

yburda/iwae `chop_units_with_variance_under_threshold`: a unit u of h_l with A_u under the threshold (Section 5.2)
is cut out of every weight that touches it, giving a smaller model of the same kind:
    q(h_l | h_{l-1}):   the unit's rows of the mean and log-std heads (its output);
    q(h_{l+1} | h_l):   the unit's input column of the first linear layer reading h_l;
    p(h_{l-1} | h_l):   the unit's input column (decoders[l-1] reads h_l; decoders[0] is p(x | h_1));
    p(h_l | h_{l+1}):   the unit's rows of the mean and log-std heads (layers below the top).
Pruning an exactly inactive unit (q(u | x) = p(u | .) = N(0, 1) and zero outgoing weights) leaves every log weight
log w = log p(x, h) - log q(h | x) unchanged: the unit's log p and log q terms cancel (tests/core/test_prune.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from iwae_cli.core.model import Architecture, IWAEModel
from iwae_cli.errors import RunError

State = dict[str, torch.Tensor]


def prune_inactive(model: IWAEModel, active: Sequence[torch.Tensor]) -> IWAEModel:
    """A new IWAEModel with only the units where `active[l]` (a bool mask over h_{l+1}'s units) is true.

    The kept weights are copied; the model's dtype, device and train/eval mode are kept. Pure: `model` is unchanged.
    """
    arch = model.arch
    if len(active) != model.n_layers or any(
        m.dtype != torch.bool or m.shape != (u,) for m, u in zip(active, arch.latent_units, strict=False)
    ):
        raise RunError(
            f"prune_inactive needs one bool mask per layer of sizes {list(arch.latent_units)}, "
            f"got {[tuple(m.shape) for m in active]}"
        )
    keep = [mask.nonzero().squeeze(1).cpu() for mask in active]
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    for layer, index in enumerate(keep):
        _select_outputs(state, f"encoders.{layer}", ("mean", "log_std"), index)  # q(h_l | h_{l-1})
        if layer + 1 < model.n_layers:  # q(h_{l+1} | h_l)
            _select_inputs(state, f"encoders.{layer + 1}", model.encoders[layer + 1], index)
        # p(h_{l-1} | h_l) reads h_l (decoders[0] is p(x | h_1))
        _select_inputs(state, f"decoders.{layer}", model.decoders[layer], index)
        if layer >= 1:  # p(h_l | h_{l+1}) outputs the units of the layer below
            _select_outputs(state, f"decoders.{layer}", ("mean", "log_std"), keep[layer - 1])
    with warnings.catch_warnings():  # a layer left with no units: torch warns that it initialises nothing
        warnings.simplefilter("ignore", UserWarning)
        pruned = IWAEModel(_pruned_architecture(arch, keep))
    param = next(model.parameters())
    pruned.to(device=param.device, dtype=param.dtype)
    pruned.load_state_dict(state)  # strict: every shape must match the smaller architecture
    return pruned.train(model.training)


def _pruned_architecture(arch: Architecture, keep: list[torch.Tensor]) -> Architecture:
    """The same hidden sizes with the kept number of latent units (a layer may keep none)."""
    return Architecture(tuple(len(k) for k in keep), arch.encoder_hidden, arch.decoder_hidden, arch.x_dim)


def _select_outputs(state: State, prefix: str, heads: tuple[str, ...], index: torch.Tensor) -> None:
    """Keep the rows `index` (output units) of the named linear heads: weight [out, in] and bias [out]."""
    for head in heads:
        for kind in ("weight", "bias"):
            name = f"{prefix}.{head}.{kind}"
            state[name] = state[name][index.to(state[name].device)]


def _select_inputs(state: State, prefix: str, module: nn.Module, index: torch.Tensor) -> None:
    """Keep the columns `index` (input units) of the linear layers that read the module's input."""
    for name in _input_layers(module):
        weight = state[f"{prefix}.{name}.weight"]
        state[f"{prefix}.{name}.weight"] = weight[:, index.to(weight.device)]


def _input_layers(module: nn.Module) -> list[str]:
    """The linear layers fed by the module's input: the MLP's first layer, or its heads when it has no hidden layer."""
    if len(module.body) > 0:
        return ["body.0"]
    return [
        name for name, child in module.named_children() if name != "body" and isinstance(child, nn.Linear)
    ]
