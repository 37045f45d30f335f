"""One training step, two ways: the plain autograd step, and the same step with its gradient compiled.

Both draw the step's randomness the same way (`draw_minibatch`), compute the gradient of a function of
(parameters, minibatch, noise), and move the parameters with the same torch.optim optimiser, so a checkpoint does
not depend on which step wrote it. The compiled step traces the gradient whole (torch.func) and hands it to
torch.compile, which fuses the elementwise work around the matmuls and removes most per-operation overhead
(`iwae bench` measures both). Compiling the Adam update too was measured slower and noisier on CPU than torch's
fused Adam, so the optimiser stays outside; the compiled step launches that fused kernel directly (`fast_step`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call, grad_and_value

from iwae_cli.core.gradients import backward
from iwae_cli.core.model import IWAEModel
from iwae_cli.core.noise import draw_minibatch
from iwae_cli.core.objectives import loss_divisor
from iwae_cli.core.optim import fast_step
from iwae_cli.errors import NumericalError
from iwae_cli.training.compile import compile_mode


def train_step(
    model: IWAEModel,
    optimizer: torch.optim.Optimizer,
    objective,
    intensities: torch.Tensor,
    k: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """One optimiser step on a minibatch of intensities; returns the sum of the bound over the minibatch.

    Raises NumericalError (before the optimiser moves) when the loss or a gradient is not finite.
    """
    x, noise = draw_minibatch(model, intensities, k, generator)
    estimate = objective(model, x, k, noise)
    optimizer.zero_grad(set_to_none=True)
    backward(model, estimate)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    finite = torch.isfinite(estimate.loss) & torch.stack(torch._foreach_norm(grads)).isfinite().all()
    if not finite:
        raise NumericalError("non-finite loss or gradient")
    optimizer.step()
    return estimate.bound.detach().sum()


class CompiledStep:
    """`train_step` for an objective that is a bound of the log weights, with the gradient compiled.

    `gradient` is a pure function of (parameters, binary minibatch, noise), differentiated with torch.func and
    compiled whole by torch.compile; the optimiser then steps as in the plain path. Calling the object has
    train_step's contract: the same random draws, the same optimiser, the bound's sum returned, NumericalError
    (nothing moved) on a non-finite loss or gradient. The constructor compiles (seconds) and raises whatever
    torch.compile raises where it cannot work here (no C++ compiler, say).
    """

    def __init__(
        self,
        model: IWAEModel,
        optimizer: torch.optim.Optimizer,
        bound: Callable[[torch.Tensor], torch.Tensor],
        k: int,
        batch_size: int,
        reduction: str = "sum",
    ):
        self.model, self.bound, self.k = model, bound, k
        self.divisor = loss_divisor(reduction, batch_size)
        self.optimizer_step = fast_step(optimizer)
        self.names = [name for name, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        device = self.params[0].device
        self.compiled = torch.compile(self.gradient, dynamic=False, mode=compile_mode(device))
        # Compile now, on inputs of the real shapes, so a failure shows before any step has drawn randomness.
        x = torch.zeros(batch_size, model.arch.x_dim, device=device)
        noise = [torch.zeros(shape, device=device) for shape in model.noise_shapes(k, batch_size)]
        self.compiled([p.detach() for p in self.params], x, noise)

    def gradient(
        self, params: list[torch.Tensor], x: torch.Tensor, noise: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(parameters, binary x, noise) -> (gradient of the loss, whether the loss and the gradient are all
        finite, the bound's sum over the minibatch). No side effects."""

        def loss(params):
            log_w = functional_call(
                self.model, dict(zip(self.names, params, strict=True)), (x, self.k, noise)
            )
            bound = self.bound(log_w)
            bound_sum = bound.sum()
            loss = -bound_sum if self.divisor == 1 else -bound_sum / self.divisor
            return loss, bound_sum.detach()

        grads, (value, bound_sum) = grad_and_value(loss, has_aux=True)(params)
        finite = torch.isfinite(value) & torch.stack([torch.isfinite(g).all() for g in grads]).all()
        return grads, finite, bound_sum

    def __call__(self, intensities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x, noise = draw_minibatch(self.model, intensities, self.k, generator)
        if x.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are consumed
        grads, finite, bound_sum = self.compiled([p.detach() for p in self.params], x, noise)
        if not finite:
            raise NumericalError("non-finite loss or gradient")
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g
        self.optimizer_step()
        return bound_sum.clone()  # (a CUDA graph's output buffer is overwritten by the next replay)
