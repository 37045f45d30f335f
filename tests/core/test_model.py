"""The model of docs/protocol.md: architectures, initialisation, densities, posterior sampling and generation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.distributions import Bernoulli, Normal

from iwae_cli.core.model import Architecture, IWAEModel, build_model, glorot_uniform_, initialise
from iwae_cli.data.loading import load_dataset, training_pixel_means
from iwae_cli.errors import ConfigError
from iwae_cli.specs.run import architecture
from tests.helpers.tiny_models import binary_x, random_model

CONF = Path(__file__).resolve().parents[2] / "conf"

ONE_LAYER = Architecture(latent_units=(50,), encoder_hidden=((200, 200),), decoder_hidden=((200, 200),))
TWO_LAYERS = Architecture(
    latent_units=(100, 50),
    encoder_hidden=((200, 200), (100, 100)),
    decoder_hidden=((200, 200), (100, 100)),
)
SMALL_1 = Architecture(latent_units=(3,), encoder_hidden=((7, 5),), decoder_hidden=((6,),), x_dim=10)
SMALL_2 = Architecture(
    latent_units=(4, 3), encoder_hidden=((7,), (5,)), decoder_hidden=((6,), (5, 4)), x_dim=10
)


def linear_shapes(module: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer of a module, in definition order."""
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_mlp(linears: list[nn.Linear], h: torch.Tensor) -> torch.Tensor:
    """tanh(W h + b) through every layer, written out from the raw weights."""
    for lin in linears:
        h = torch.tanh(h @ lin.weight.T + lin.bias)
    return h


def gaussian_params(layer, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of a GaussianLayer, computed from its raw weights."""
    feats = forward_mlp([m for m in layer.body if isinstance(m, nn.Linear)], h)
    mean = feats @ layer.mean.weight.T + layer.mean.bias
    std = torch.exp(feats @ layer.log_std.weight.T + layer.log_std.bias)
    return mean, std


def bernoulli_logits(layer, h: torch.Tensor) -> torch.Tensor:
    feats = forward_mlp([m for m in layer.body if isinstance(m, nn.Linear)], h)
    return feats @ layer.logits.weight.T + layer.logits.bias


def reference_log_joint(model: IWAEModel, x: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor:
    """log p(x, h) with torch.distributions, independent of the model's own density code."""
    log_p = Normal(0.0, 1.0).log_prob(hs[-1]).sum(-1)
    for i in range(1, len(hs)):
        mean, std = gaussian_params(model.decoders[i], hs[i])
        log_p = log_p + Normal(mean, std).log_prob(hs[i - 1]).sum(-1)
    logits = bernoulli_logits(model.decoders[0], hs[0])
    return log_p + Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)


# ----------------------------------------------------------------------------------------------------------
# architectures


def test_one_layer_architecture_matches_protocol_table():
    model = IWAEModel(ONE_LAYER)
    assert model.n_layers == 1
    # encoder: x -> 200 -> 200 -> (mean 50, log-std 50)
    assert linear_shapes(model.encoders[0]) == [(784, 200), (200, 200), (200, 50), (200, 50)]
    # decoder: h1 -> 200 -> 200 -> 784 logits
    assert linear_shapes(model.decoders[0]) == [(50, 200), (200, 200), (200, 784)]
    assert len(model.encoders) == len(model.decoders) == 1
    enc = 784 * 200 + 200 + 200 * 200 + 200 + 2 * (200 * 50 + 50)
    dec = 50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
    assert n_params(model.encoders) == enc == 217_300
    assert n_params(model.decoders) == dec == 207_984
    assert n_params(model) == 425_284
    # deterministic layers are tanh
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 4


def test_two_layer_architecture_matches_protocol_table():
    model = IWAEModel(TWO_LAYERS)
    assert model.n_layers == 2
    assert linear_shapes(model.encoders[0]) == [(784, 200), (200, 200), (200, 100), (200, 100)]
    assert linear_shapes(model.encoders[1]) == [(100, 100), (100, 100), (100, 50), (100, 50)]
    # p(h1 | h2): h2 -> 100 -> 100 -> (mean 100, log-std 100); p(x | h1): h1 -> 200 -> 200 -> 784
    assert linear_shapes(model.decoders[1]) == [(50, 100), (100, 100), (100, 100), (100, 100)]
    assert linear_shapes(model.decoders[0]) == [(100, 200), (200, 200), (200, 784)]
    assert n_params(model.encoders[0]) == 784 * 200 + 200 + 200 * 200 + 200 + 2 * (200 * 100 + 100)
    assert n_params(model.encoders[1]) == (100 * 100 + 100) * 2 + 2 * (100 * 50 + 50)
    assert n_params(model.decoders[1]) == (50 * 100 + 100) + (100 * 100 + 100) + 2 * (100 * 100 + 100)
    assert n_params(model) == 521_084
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 8


@pytest.mark.parametrize("layers, arch", [("1", ONE_LAYER), ("2", TWO_LAYERS)])
def test_layer_configs_build_the_paper_architectures(layers, arch):
    node = OmegaConf.load(CONF / "layers" / f"{layers}.yaml")
    assert architecture(node, "mnist") == arch


def test_an_architecture_of_inconsistent_sizes_is_refused():
    bad_lengths = OmegaConf.create(
        {"latent_units": [100, 50], "encoder_hidden": [[200]], "decoder_hidden": [[2]]}
    )
    with pytest.raises(ConfigError, match="latent_units has 2 layers"):
        architecture(bad_lengths, "mnist")
    non_positive = OmegaConf.create({"latent_units": [0], "encoder_hidden": [[2]], "decoder_hidden": [[2]]})
    with pytest.raises(ConfigError, match="positive"):
        architecture(non_positive, "mnist")


# ----------------------------------------------------------------------------------------------------------
# initialisation


def test_glorot_uniform_bounds_and_spread():
    w = torch.empty(300, 500)
    glorot_uniform_(w, torch.Generator().manual_seed(3))
    bound = math.sqrt(6 / 800)
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound
    # U(-s, s) has standard deviation s / sqrt(3) and mean 0
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(w.mean().item()) < 0.01 * bound


@pytest.fixture(scope="module")
def mnist_train(mnist_data_dir) -> torch.Tensor:
    return load_dataset("mnist", mnist_data_dir, download="never").train


def test_initialise_follows_the_paper_on_real_mnist(mnist_train):
    means = training_pixel_means(mnist_train[:2000])
    model = IWAEModel(TWO_LAYERS)
    initialise(model, means, seed=5)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4 + 4 + 3 + 4
    for lin in linears:
        bound = math.sqrt(6 / (lin.in_features + lin.out_features))
        assert lin.weight.abs().max() <= bound
        assert lin.weight.abs().max() > 0.9 * bound  # not all tiny
        assert abs(lin.weight.std().item() - bound / math.sqrt(3)) < 0.15 * bound
        if lin is not model.decoders[0].logits:
            assert torch.count_nonzero(lin.bias) == 0
    bias = model.decoders[0].logits.bias.detach()
    clipped = mnist_train[:2000].mean(0).clamp(0.001, 0.999)
    torch.testing.assert_close(bias, torch.log(clipped / (1 - clipped)), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(torch.sigmoid(bias), clipped, rtol=1e-5, atol=1e-6)
    # MNIST's corner pixels are always 0: their mean is clipped to 0.001, so the bias is logit(0.001) ~ -6.9
    assert bias[0].item() == pytest.approx(math.log(0.001 / 0.999), abs=1e-4)
    # the centre of the image is often on: a bias well above the corners
    assert bias[14 * 28 + 14].item() > 0.0


def test_initialise_clips_extreme_means():
    means = torch.linspace(0.0, 1.0, 784)
    model = IWAEModel(ONE_LAYER)
    initialise(model, means, seed=0)
    bias = model.decoders[0].logits.bias.detach()
    assert torch.isfinite(bias).all()
    assert bias[0].item() == pytest.approx(math.log(0.001 / 0.999), abs=1e-4)
    assert bias[-1].item() == pytest.approx(math.log(0.999 / 0.001), abs=1e-4)


def test_same_seed_per_layer_makes_equal_shaped_layers_equal():
    means = torch.full((784,), 0.3)
    quirk, default = IWAEModel(ONE_LAYER), IWAEModel(ONE_LAYER)
    initialise(quirk, means, seed=7, same_seed_per_layer=True)
    initialise(default, means, seed=7)
    pairs = [
        (quirk.encoders[0].body[2].weight, quirk.decoders[0].body[2].weight),  # the two 200x200 layers
        (quirk.encoders[0].mean.weight, quirk.encoders[0].log_std.weight),  # the two 200 -> 50 heads
    ]
    for a, b in pairs:
        assert torch.equal(a, b)
    default_pairs = [
        (default.encoders[0].body[2].weight, default.decoders[0].body[2].weight),
        (default.encoders[0].mean.weight, default.encoders[0].log_std.weight),
    ]
    for a, b in default_pairs:
        assert not torch.allclose(a, b)
    # the quirk seeds each layer with 123, independent of the run seed
    other = IWAEModel(ONE_LAYER)
    initialise(other, means, seed=99, same_seed_per_layer=True)
    assert all(torch.equal(p, q) for p, q in zip(quirk.parameters(), other.parameters(), strict=True))


def test_initialise_is_deterministic_in_the_seed():
    means = torch.full((10,), 0.5)
    a, b, c = IWAEModel(SMALL_2), IWAEModel(SMALL_2), IWAEModel(SMALL_2)
    initialise(a, means, seed=1)
    initialise(b, means, seed=1)
    initialise(c, means, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.encoders[0].mean.weight, c.encoders[0].mean.weight)


def test_build_model_applies_same_seed_init():
    arch = architecture(OmegaConf.load(CONF / "layers" / "1.yaml"), "mnist")
    means = torch.full((784,), 0.2)
    model = build_model(arch, means, seed=0)
    assert not torch.equal(model.encoders[0].mean.weight, model.encoders[0].log_std.weight)
    quirk = build_model(arch, means, seed=0, same_seed_init=True)
    assert torch.equal(quirk.encoders[0].mean.weight, quirk.encoders[0].log_std.weight)


# ----------------------------------------------------------------------------------------------------------
# densities


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_log_joint_matches_torch_distributions(arch):
    model = random_model(arch, seed=2, scale=2.0)
    x = binary_x(5, arch.x_dim)
    g = torch.Generator().manual_seed(4)
    hs = [2 * torch.randn(5, u, generator=g, dtype=torch.float64) for u in arch.latent_units]
    expected = reference_log_joint(model, x, hs)
    got = model.log_joint(x, hs)
    assert got.shape == (5,)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_log_joint_broadcasts_over_leading_sample_dimensions(arch):
    model = random_model(arch, seed=3)
    x = binary_x(4, arch.x_dim)
    g = torch.Generator().manual_seed(5)
    hs = [torch.randn(2, 3, 4, u, generator=g, dtype=torch.float64) for u in arch.latent_units]
    got = model.log_joint(x, hs)
    assert got.shape == (2, 3, 4)
    for a in range(2):
        for b in range(3):
            one = model.log_joint(x, [h[a, b] for h in hs])
            torch.testing.assert_close(got[a, b], one, rtol=1e-12, atol=1e-10)
            torch.testing.assert_close(got[a, b], reference_log_joint(model, x, [h[a, b] for h in hs]))


def test_log_joint_rejects_wrong_number_of_layers():
    model = random_model(SMALL_2)
    with pytest.raises(ValueError, match="expected 2 latent tensors"):
        model.log_joint(binary_x(2, 10), [torch.zeros(2, 4, dtype=torch.float64)])


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_sample_posterior_with_noise_is_the_reparameterisation(arch):
    model = random_model(arch, seed=6, scale=1.5)
    x = binary_x(3, arch.x_dim)
    k = 4
    g = torch.Generator().manual_seed(8)
    noise = [torch.randn(s, generator=g, dtype=torch.float64) for s in model.noise_shapes(k, 3)]
    assert model.noise_shapes(k, 3) == [(k, 3, u) for u in arch.latent_units]
    hs, log_q = model.sample_posterior(x, k, noise)
    hs2, log_q2 = model.sample_posterior(x, k, noise)
    assert all(torch.equal(a, b) for a, b in zip(hs, hs2, strict=True)) and torch.equal(log_q, log_q2)
    assert [h.shape for h in hs] == [torch.Size([k, 3, u]) for u in arch.latent_units]
    assert log_q.shape == (k, 3)
    # by hand: h_l = mean(h_{l-1}) + std(h_{l-1}) * eps_l, log q = sum_l log N(h_l; mean, std)
    h_prev, expected_log_q = x, torch.zeros(k, 3, dtype=torch.float64)
    for i, layer in enumerate(model.encoders):
        mean, std = gaussian_params(layer, h_prev)
        expected = mean + std * noise[i]
        torch.testing.assert_close(hs[i], expected, rtol=1e-12, atol=1e-12)
        expected_log_q = expected_log_q + Normal(mean, std).log_prob(expected).sum(-1)
        h_prev = expected
    torch.testing.assert_close(log_q, expected_log_q, rtol=1e-12, atol=1e-10)
    # log_posterior of the same samples gives the same log q
    torch.testing.assert_close(model.log_posterior(x, hs), log_q, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(model.log_posterior(x, hs, stop_params=True), log_q, rtol=1e-12, atol=1e-10)


def test_sample_posterior_without_noise_uses_the_global_generator():
    model = random_model(SMALL_2, seed=1)
    x = binary_x(3, 10)
    torch.manual_seed(11)
    hs_a, _ = model.sample_posterior(x, 5)
    torch.manual_seed(11)
    hs_b, _ = model.sample_posterior(x, 5)
    hs_c, _ = model.sample_posterior(x, 5)
    assert torch.equal(hs_a[1], hs_b[1])
    assert not torch.equal(hs_a[1], hs_c[1])
    assert hs_a[0].dtype == torch.float64


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_log_posterior_stop_params_blocks_only_the_parameter_path(arch):
    model = random_model(arch, seed=9)
    x = binary_x(3, arch.x_dim)
    g = torch.Generator().manual_seed(2)
    noise = [torch.randn(s, generator=g, dtype=torch.float64) for s in model.noise_shapes(2, 3)]
    hs, _ = model.sample_posterior(x, 2, noise)
    enc = list(model.encoders.parameters())

    detached = [h.detach() for h in hs]
    stopped = model.log_posterior(x, detached, stop_params=True)
    full = model.log_posterior(x, detached)
    torch.testing.assert_close(stopped, full, rtol=0, atol=0)
    assert not stopped.requires_grad  # no path to any parameter
    full_grads = torch.autograd.grad(full.sum(), enc, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in full_grads)

    # with reparameterised samples, gradients reach the encoder only through hs
    leaves = [h.detach().requires_grad_() for h in hs]
    stopped = model.log_posterior(x, leaves, stop_params=True)
    grads = torch.autograd.grad(stopped.sum(), enc + leaves, allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads[: len(enc)])
    assert all(g is not None and g.abs().sum() > 0 for g in grads[len(enc) :])
    # ... and those path gradients are the same as with live parameters
    live = model.log_posterior(x, leaves)
    live_grads = torch.autograd.grad(live.sum(), leaves)
    for a, b in zip(grads[len(enc) :], live_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_log_weights_shape_and_value(arch):
    model = random_model(arch, seed=4)
    x = binary_x(6, arch.x_dim)
    g = torch.Generator().manual_seed(3)
    noise = [torch.randn(s, generator=g, dtype=torch.float64) for s in model.noise_shapes(7, 6)]
    log_w = model.log_weights(x, 7, noise)
    assert log_w.shape == (7, 6)
    hs, log_q = model.sample_posterior(x, 7, noise)
    torch.testing.assert_close(log_w, reference_log_joint(model, x, hs) - log_q, rtol=1e-12, atol=1e-10)
    stopped = model.log_weights(x, 7, noise, stop_q_params=True)
    torch.testing.assert_close(stopped, log_w, rtol=1e-12, atol=1e-10)
    torch.manual_seed(0)
    assert model.log_weights(x, 2).shape == (2, 6)


# ----------------------------------------------------------------------------------------------------------
# generation


@pytest.mark.parametrize("arch", [ONE_LAYER, TWO_LAYERS], ids=["1-layer", "2-layer"])
def test_sample_gives_pixel_probabilities(arch):
    model = IWAEModel(arch)
    initialise(model, torch.full((784,), 0.13), seed=0)
    out = model.sample(9, torch.Generator().manual_seed(1))
    assert out.shape == (9, 784)
    assert out.min() >= 0 and out.max() <= 1
    assert not out.requires_grad
    again = model.sample(9, torch.Generator().manual_seed(1))
    other = model.sample(9, torch.Generator().manual_seed(2))
    assert torch.equal(out, again)
    assert not torch.equal(out, other)
    # samples differ from each other (they depend on h)
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_sample_is_ancestral_sampling():
    model = random_model(SMALL_2, seed=12)
    out = model.sample(5, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    h2 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    mean, std = gaussian_params(model.decoders[1], h2)
    h1 = mean + std * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    expected = torch.sigmoid(bernoulli_logits(model.decoders[0], h1))
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-7)
    assert out.dtype == torch.float64
