"""One training step for a group of runs of one shape (same data, architecture, k, schedule and optimiser;
different objectives or seeds), taken together: the runs' parameters stacked along a leading group dimension,
one batched product per layer for all of them (torch.func.vmap), one fused optimiser update.

Each run still draws its step's randomness from its own generator in the order `noise.draw_minibatch` uses, and
the runs do not interact (the loss is the sum of the runs' losses, so each run's slice of the gradient is its
own loss's gradient), so a run trained in a group follows the same path as alone, to float rounding. Adam is
elementwise, so one update of the stacked tensors is the runs' updates side by side.

On CUDA the gradient is compiled with CUDA graphs (mode="reduce-overhead"): a step at minibatch 20 is bound
by kernel launches, which one graph replay removes; the fused Adam update follows it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from iwae_cli.core.model import IWAEModel
from iwae_cli.core.noise import draw_minibatch
from iwae_cli.core.optim import OptimSpec, build_optimizer, fast_step
from iwae_cli.training.compile import compile_mode


def stack_state(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The optimiser states of one parameter in several runs as one state of the stacked parameter: tensors of
    the parameter's shape stacked, scalars (the step count, equal in runs that stand at the same step) shared."""
    return {
        key: torch.stack([s[key] for s in states]) if value.dim() else value.clone()
        for key, value in states[0].items()
    }


@dataclass(frozen=True)
class Member:
    """One run of a group as its step needs it: its model, optimiser and generator (the group's state is written
    back into them), and its loss: minus bound(log w) summed over the minibatch, divided by divisor."""

    model: IWAEModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    bound: Callable[[torch.Tensor], torch.Tensor]
    divisor: int


class GroupStep:
    """`train_step` for the members at once, with k samples on minibatches of batch_size; `write_back` puts
    the stacked state into the members' own models and optimisers (before they are saved or validated).
    optim and lr: the members' optimiser. compiled: torch.compile the gradient (raises whatever torch.compile
    raises where it cannot work here)."""

    def __init__(
        self, members: Sequence[Member], optim: OptimSpec, lr: float, k: int, batch_size: int, compiled: bool
    ):
        first = members[0].model
        self.members, self.k = list(members), k
        self.names = [name for name, _ in first.named_parameters()]
        self.stacked = [
            torch.stack([m.model.get_parameter(n).detach() for m in members]).contiguous() for n in self.names
        ]
        self.optimizer = build_optimizer(self.stacked, optim, lr)
        self._load_optimizer_states()
        self.optimizer_step = fast_step(self.optimizer)
        # the module's structure without its storage: functional_call supplies every parameter
        self.skeleton = copy.deepcopy(first).to("meta")
        self.gradient = self._gradient
        if compiled:
            device = self.stacked[0].device
            self.gradient = torch.compile(self._gradient, dynamic=False, mode=compile_mode(device))
            # compile now, on inputs of the real shapes, so a failure shows before any step drew randomness
            x = torch.zeros(len(members), batch_size, first.arch.x_dim, device=device)
            noise = [torch.zeros(len(members), *s, device=device) for s in first.noise_shapes(k, batch_size)]
            self.gradient(self.stacked, x, noise)

    def _load_optimizer_states(self) -> None:
        """The runs' optimiser states (resumed or carried from a parent), stacked; none before their first step."""
        states = [[m.optimizer.state.get(p, {}) for p in m.model.parameters()] for m in self.members]
        for i, p in enumerate(self.stacked):
            per_run = [s[i] for s in states]
            if all(per_run):
                self.optimizer.state[p] = stack_state(per_run)

    def _gradient(
        self, params: list[torch.Tensor], x: torch.Tensor, noise: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(stacked parameters, binary x [G, B, D], noise [G, k, B, u] per layer) -> (the stacked gradient,
        whether each run's loss and gradient are finite [G], each run's bound summed over the minibatch [G])."""

        def log_weights(run_params, run_x, run_noise):
            return functional_call(self.skeleton, run_params, (run_x, self.k, run_noise))

        def loss(params):
            log_w = vmap(log_weights)(dict(zip(self.names, params, strict=True)), x, noise)  # [G, k, B]
            sums = torch.stack([m.bound(log_w[g]).sum() for g, m in enumerate(self.members)])
            divisors = torch.tensor([m.divisor for m in self.members], dtype=sums.dtype, device=sums.device)
            return -(sums / divisors).sum(), sums.detach()

        grads, sums = grad(loss, has_aux=True)(params)
        finite = torch.isfinite(sums)
        for g in grads:
            finite = finite & torch.isfinite(g).flatten(1).all(1)
        return grads, finite, sums

    def __call__(self, intensities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of every run on the minibatch; (each run's bound sum [G], which runs were finite [G]).
        Where any run is not finite nothing moves."""
        draws = [draw_minibatch(m.model, intensities, self.k, m.generator) for m in self.members]
        x = torch.stack([d[0] for d in draws])
        noise = [torch.stack([d[1][layer] for d in draws]) for layer in range(len(draws[0][1]))]
        if x.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are consumed
        grads, finite, sums = self.gradient(self.stacked, x, noise)
        if bool(finite.all()):
            for p, g in zip(self.stacked, grads, strict=True):
                p.grad = (
                    g.contiguous()
                )  # vmap's weight gradients come transposed; fused Adam needs p's layout
            self.optimizer_step()
        return sums.clone(), finite.clone()

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy each run's slice of the stacked parameters and optimiser state into its own model and optimiser."""
        for g, member in enumerate(self.members):
            for p, stacked in zip(member.model.parameters(), self.stacked, strict=True):
                p.copy_(stacked[g])
                state = self.optimizer.state.get(stacked)
                if state:
                    member.optimizer.state[p] = {
                        key: value[g].clone() if value.dim() else value.clone()
                        for key, value in state.items()
                    }
