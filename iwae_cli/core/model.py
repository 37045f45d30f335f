"""The paper's architecture: tanh MLPs, diagonal-Gaussian latent layers, a Bernoulli output.

Notation follows docs/protocol.md. For L stochastic layers h_1..h_L:
    q(h_1..h_L | x)  = q(h_1 | x) q(h_2 | h_1) ... q(h_L | h_{L-1})
    p(x, h_1..h_L)   = p(h_L) p(h_{L-1} | h_L) ... p(h_1 | h_2) p(x | h_1),   p(h_L) = N(0, I)
    log w            = log p(x, h) - log q(h | x)
Every tensor of latents has shape [..., batch, units]; the leading dimensions are samples (k) and broadcast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(h: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(h; mean, exp(log_std)^2), summed over the last (unit) dimension."""
    z = (h - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * LOG_2PI).sum(-1)


def standard_normal_log_density(h: torch.Tensor) -> torch.Tensor:
    """log N(h; 0, I), summed over the last dimension."""
    return (-0.5 * h * h - 0.5 * LOG_2PI).sum(-1)


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) = x * logits - softplus(logits), summed over pixels."""
    return (x * logits - F.softplus(logits)).sum(-1)


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes, each followed by tanh (the paper's deterministic layers)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    return nn.Sequential(*layers)


class GaussianLayer(nn.Module):
    """A conditional diagonal Gaussian: tanh MLP, then a mean head and a log-std head (std = exp(head))."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int):
        super().__init__()
        self.body = mlp([n_in, *hidden])
        width = hidden[-1] if hidden else n_in
        self.mean = nn.Linear(width, n_out)
        self.log_std = nn.Linear(width, n_out)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(inputs)
        return self.mean(features), self.log_std(features)


class BernoulliLayer(nn.Module):
    """p(x | h_1): tanh MLP, then logits of the 784 pixels."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int):
        super().__init__()
        self.body = mlp([n_in, *hidden])
        self.logits = nn.Linear(hidden[-1] if hidden else n_in, n_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.logits(self.body(h))


@dataclass(frozen=True)
class Architecture:
    """Sizes of the model. Index l of each list belongs to stochastic layer l+1.

    encoder_hidden[l]: hidden sizes of q(h_{l+1} | h_l) (h_0 = x);
    decoder_hidden[l]: hidden sizes of p(h_l | h_{l+1}) (h_0 = x), so decoder_hidden[0] is p(x | h_1).
    """

    latent_units: tuple[int, ...]
    encoder_hidden: tuple[tuple[int, ...], ...]
    decoder_hidden: tuple[tuple[int, ...], ...]
    x_dim: int = 784  # MNIST's 28x28; a run's is its dataset's (DatasetSpec.n_pixels)


class IWAEModel(nn.Module):
    """Generative model p(x, h) and recognition model q(h | x) of the paper (1 or more stochastic layers)."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        inputs = (arch.x_dim, *arch.latent_units)
        self.encoders = nn.ModuleList(
            GaussianLayer(inputs[layer], arch.encoder_hidden[layer], arch.latent_units[layer])
            for layer in range(len(inputs) - 1)
        )
        # decoders[0] is p(x | h_1); decoders[l] for l >= 1 is p(h_l | h_{l+1}).
        self.decoders = nn.ModuleList(
            [BernoulliLayer(arch.latent_units[0], arch.decoder_hidden[0], arch.x_dim)]
            + [
                GaussianLayer(
                    arch.latent_units[layer], arch.decoder_hidden[layer], arch.latent_units[layer - 1]
                )
                for layer in range(1, len(arch.latent_units))
            ]
        )

    @property
    def n_layers(self) -> int:
        return len(self.arch.latent_units)

    def sample_posterior(
        self, x: torch.Tensor, k: int, noise: Sequence[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Draw k reparameterised samples h ~ q(h | x); return (hs, log q(hs | x)).

        hs[l] has shape [k, batch, units_l]. `noise` (one standard-normal tensor per layer, same shapes) makes the
        draw a pure function of its inputs; without it, noise comes from torch's global generator.
        """
        hs, log_q = [], x.new_zeros(())
        h_prev = x
        for layer, encoder in enumerate(self.encoders):
            mean, log_std = encoder(h_prev)
            eps = noise[layer] if noise is not None else self._standard_normal(x, k, layer)
            # on the first layer this broadcasts [batch, u] against the noise's [k, batch, u]
            h = mean + torch.exp(log_std) * eps
            log_q = log_q + gaussian_log_density(h, mean, log_std)
            hs.append(h)
            h_prev = h
        return hs, log_q

    def _standard_normal(self, x: torch.Tensor, k: int, layer: int) -> torch.Tensor:
        return torch.randn(k, x.shape[0], self.arch.latent_units[layer], device=x.device, dtype=x.dtype)

    def noise_shapes(self, k: int, batch: int) -> list[tuple[int, int, int]]:
        """Shapes of the standard-normal noise that `sample_posterior` consumes."""
        return [(k, batch, u) for u in self.arch.latent_units]

    def log_posterior(
        self, x: torch.Tensor, hs: Sequence[torch.Tensor], stop_params: bool = False
    ) -> torch.Tensor:
        """log q(hs | x) for given latents. With stop_params the encoder's parameters are treated as constants
        (gradients still flow through hs), as the STL and DReG estimators need."""
        params = {n: p.detach() for n, p in self.encoders.named_parameters()} if stop_params else None
        log_q = x.new_zeros(())
        for layer, h in enumerate(hs):
            h_prev = x if layer == 0 else hs[layer - 1]
            if params is None:
                mean, log_std = self.encoders[layer](h_prev)
            else:
                prefix = f"{layer}."
                layer_params = {n[len(prefix) :]: p for n, p in params.items() if n.startswith(prefix)}
                mean, log_std = torch.func.functional_call(self.encoders[layer], layer_params, (h_prev,))
            log_q = log_q + gaussian_log_density(h, mean, log_std)
        return log_q

    def log_joint(self, x: torch.Tensor, hs: Sequence[torch.Tensor]) -> torch.Tensor:
        """log p(x, h_1..h_L) = log p(h_L) + sum_l log p(h_l | h_{l+1}) + log p(x | h_1).

        hs is a list, h_1 first, each [..., batch, units]; the result is [..., batch].
        """
        if len(hs) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} latent tensors, got {len(hs)}")
        log_p = standard_normal_log_density(hs[-1])
        for layer in range(1, self.n_layers):
            mean, log_std = self.decoders[layer](hs[layer])
            log_p = log_p + gaussian_log_density(hs[layer - 1], mean, log_std)
        return log_p + bernoulli_log_likelihood(x, self.decoders[0](hs[0]))

    def log_weights(
        self,
        x: torch.Tensor,
        k: int,
        noise: Sequence[torch.Tensor] | None = None,
        stop_q_params: bool = False,
    ) -> torch.Tensor:
        """log w_i = log p(x, h^(i)) - log q(h^(i) | x) for k samples h^(i) ~ q(h | x): a [k, batch] tensor."""
        hs, log_q = self.sample_posterior(x, k, noise)
        if stop_q_params:
            log_q = self.log_posterior(x, hs, stop_params=True)
        return self.log_joint(x, hs) - log_q

    def forward(self, x: torch.Tensor, k: int, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The log weights ([k, batch]); as `forward`, torch.func.functional_call can run them with any
        parameters, which is how the compiled training step differentiates them."""
        return self.log_weights(x, k, noise)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples from the model, returned as decoder means (pixel probabilities), [n, 784]."""
        param = next(self.parameters())
        like = dict(generator=generator, device=param.device, dtype=param.dtype)  # float64 models too
        h = torch.randn(n, self.arch.latent_units[-1], **like)
        for layer in range(self.n_layers - 1, 0, -1):
            mean, log_std = self.decoders[layer](h)
            h = mean + torch.exp(log_std) * torch.randn(mean.shape, **like)
        return torch.sigmoid(self.decoders[0](h))


def glorot_uniform_(weight: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Glorot-uniform: U(-s, s) with s = sqrt(6 / (fan_in + fan_out))."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=generator)


def initialise(
    model: IWAEModel, pixel_means: torch.Tensor, seed: int, same_seed_per_layer: bool = False
) -> None:
    """The paper's initialisation: Glorot-uniform weights, zero biases, output bias = logit(training means).

    same_seed_per_layer reproduces a quirk of the authors' code: every layer is drawn from a generator seeded
    with 123, so layers of equal shape start equal.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            layer_generator = torch.Generator().manual_seed(123) if same_seed_per_layer else generator
            glorot_uniform_(module.weight, layer_generator)
            nn.init.zeros_(module.bias)
    with torch.no_grad():
        means = pixel_means.clamp(0.001, 0.999)
        model.decoders[0].logits.bias.copy_(torch.log(means) - torch.log1p(-means))


def build_model(
    arch: Architecture, pixel_means: torch.Tensor, seed: int, same_seed_init: bool = False
) -> IWAEModel:
    """An initialised model of `arch`, whose input is the dataset whose per-pixel training means (one per pixel
    of its declared image shape) are ``pixel_means``; same_seed_init: the authors' quirk (see `initialise`)."""
    model = IWAEModel(arch)
    initialise(model, pixel_means, seed, same_seed_init)
    return model
