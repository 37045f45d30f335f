"""The training objectives: bounds, and the gradients each estimator hands to the encoder and the decoder."""

from __future__ import annotations

import math

import pytest
import torch

from iwae_cli.core.model import Architecture, IWAEModel
from iwae_cli.core.objective_registry import OBJECTIVES
from iwae_cli.core.objectives import (
    Estimate,
    build_log_weight_bound,
    build_objective,
    elbo,
    importance_weighted_bound,
    multi_sample_bound,
    normalised_weights,
    renyi_bound,
)
from iwae_cli.errors import ConfigError
from tests.helpers.tiny_models import binary_x, random_model

F64 = torch.float64
SMALL_1 = Architecture(latent_units=(3,), encoder_hidden=((8,),), decoder_hidden=((8,),), x_dim=10)
SMALL_2 = Architecture(
    latent_units=(4, 3), encoder_hidden=((8,), (6,)), decoder_hidden=((8,), (6,)), x_dim=10
)
TINY_1 = Architecture(latent_units=(2,), encoder_hidden=((8,),), decoder_hidden=((8,),), x_dim=6)
TINY_2 = Architecture(latent_units=(3, 2), encoder_hidden=((8,), (6,)), decoder_hidden=((8,), (6,)), x_dim=6)


def make_noise(model: IWAEModel, k: int, batch: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=F64) for s in model.noise_shapes(k, batch)]


def grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d params, zeros for unused parameters."""
    out = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, out, strict=True)]


def encoder_params(model: IWAEModel) -> list[torch.Tensor]:
    return list(model.encoders.parameters())


def decoder_params(model: IWAEModel) -> list[torch.Tensor]:
    return list(model.decoders.parameters())


def split_grads(model: IWAEModel, est: Estimate) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(decoder grads, encoder grads) as training applies them: the encoder follows encoder_loss if given."""
    dec = grads(est.loss, decoder_params(model))
    enc_loss = est.loss if est.encoder_loss is None else est.encoder_loss
    return dec, grads(enc_loss, encoder_params(model))


def flat(gs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in gs])


def assert_same(
    a: list[torch.Tensor], b: list[torch.Tensor], rtol: float = 1e-10, atol: float = 1e-12
) -> None:
    torch.testing.assert_close(flat(a), flat(b), rtol=rtol, atol=atol)


def run(model, name: str, x, k: int, noise, **kwargs) -> Estimate:
    """The registered objective `name`, called as training calls it (minus the reduction)."""
    return OBJECTIVES[name].objective(model, x, k, noise, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# bounds as functions of the log weights


def test_importance_weighted_bound_is_log_mean_exp():
    g = torch.Generator().manual_seed(0)
    log_w = 30 * torch.randn(7, 5, generator=g, dtype=F64) - 900  # exp underflows: needs logsumexp
    m = log_w.max(0).values
    ref = m + torch.log(torch.exp(log_w - m).mean(0))  # log mean exp with an explicit max shift
    torch.testing.assert_close(importance_weighted_bound(log_w), ref, rtol=1e-12, atol=1e-10)
    assert torch.isfinite(importance_weighted_bound(log_w)).all()
    # k = 1: the bound is the log weight itself
    torch.testing.assert_close(importance_weighted_bound(log_w[:1]), log_w[0])


def test_importance_weighted_bound_is_at_least_the_elbo():
    g = torch.Generator().manual_seed(1)
    log_w = 3 * torch.randn(20, 50, generator=g, dtype=F64)
    assert torch.all(importance_weighted_bound(log_w) >= elbo(log_w))
    # equal when all weights are equal
    same = torch.full((6, 3), -2.5, dtype=F64)
    torch.testing.assert_close(importance_weighted_bound(same), elbo(same))
    torch.testing.assert_close(elbo(log_w), log_w.mean(0))


def test_multi_sample_bound_groups():
    g = torch.Generator().manual_seed(2)
    log_w = 2 * torch.randn(12, 4, generator=g, dtype=F64)
    torch.testing.assert_close(
        multi_sample_bound(log_w, 1), importance_weighted_bound(log_w), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(multi_sample_bound(log_w, 12), elbo(log_w), rtol=0, atol=1e-12)
    # M = 3 groups of K = 4 consecutive samples
    expected = torch.stack([importance_weighted_bound(log_w[4 * m : 4 * m + 4]) for m in range(3)]).mean(0)
    torch.testing.assert_close(multi_sample_bound(log_w, 3), expected, rtol=0, atol=1e-12)
    # ordered between ELBO and IWAE
    assert torch.all(elbo(log_w) <= multi_sample_bound(log_w, 3) + 1e-12)
    assert torch.all(multi_sample_bound(log_w, 3) <= importance_weighted_bound(log_w) + 1e-12)


def test_normalised_weights_are_softmax_without_gradient():
    log_w = torch.randn(5, 3, dtype=F64, requires_grad=True)
    w = normalised_weights(log_w)
    assert not w.requires_grad
    torch.testing.assert_close(w.sum(0), torch.ones(3, dtype=F64))
    torch.testing.assert_close(w, torch.exp(log_w.detach()) / torch.exp(log_w.detach()).sum(0))


# ----------------------------------------------------------------------------------------------------------
# VAE and IWAE


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_vae_and_iwae_agree_at_k1(arch):
    model = random_model(arch, seed=1)
    x = binary_x(4, arch.x_dim)
    noise = make_noise(model, 1, 4, seed=3)
    params = list(model.parameters())
    v, i = run(model, "vae", x, 1, noise), run(model, "iwae", x, 1, noise)
    torch.testing.assert_close(v.bound, i.bound, rtol=0, atol=1e-12)
    assert v.bound.shape == (4,)
    assert_same(grads(v.loss, params), grads(i.loss, params))
    # the loss is minus the bound's sum over the minibatch (the authors' scale)
    torch.testing.assert_close(v.loss, -v.bound.sum())


def test_vae_and_iwae_differ_at_k5():
    model = random_model(SMALL_1, seed=1)
    x = binary_x(4, 10)
    noise = make_noise(model, 5, 4, seed=3)
    v, i = run(model, "vae", x, 5, noise), run(model, "iwae", x, 5, noise)
    log_w = model.log_weights(x, 5, noise)
    torch.testing.assert_close(v.bound, log_w.mean(0))
    torch.testing.assert_close(i.bound, torch.logsumexp(log_w, 0) - math.log(5))
    assert torch.all(i.bound > v.bound)


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_iwae_gradient_is_normalised_weight_average(arch):
    """grad L_k = sum_i w~_i grad log w_i, computed from k separate autograd calls per example."""
    model = random_model(arch, seed=4, scale=0.5)
    batch, k = 3, 4
    x = binary_x(batch, arch.x_dim)
    noise = make_noise(model, k, batch, seed=5)
    params = list(model.parameters())
    est = run(model, "iwae", x, k, noise)
    got = flat(grads(est.loss, params))

    log_w = model.log_weights(x, k, noise)
    w = torch.softmax(log_w.detach(), 0)
    assert w.max() < 0.99 and (w.max(0).values - w.min(0).values).min() > 0.1  # neither one-hot nor uniform
    expected = torch.zeros_like(got)
    for b in range(batch):
        for i in range(k):
            expected += w[i, b] * flat(grads(log_w[i, b], params))
    expected = -expected  # loss = -sum over the minibatch
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # the uniform average (the VAE's gradient) is different
    vae = flat(grads(run(model, "vae", x, k, noise).loss, params))
    assert (vae - got).abs().max() > 1e-3


def test_iwae_bound_grows_with_k_on_average():
    model = random_model(SMALL_1, seed=7, scale=2.0)
    x = binary_x(10, 10, seed=2)
    torch.manual_seed(0)
    with torch.no_grad():
        means = {}
        for k in (1, 5, 50):
            draws = torch.stack([run(model, "iwae", x, k, None).bound for _ in range(200)])  # [200, batch]
            means[k] = (draws.mean(0), draws.std(0) / math.sqrt(200))
    for small, large in ((1, 5), (5, 50)):
        gap = means[large][0] - means[small][0]
        se = torch.sqrt(means[large][1] ** 2 + means[small][1] ** 2)
        assert gap.mean() > 4 * se.mean()  # strictly larger, beyond Monte-Carlo error
        assert (gap > -3 * se).all()  # and for every example


# ----------------------------------------------------------------------------------------------------------
# other bounds built from the same log weights


def test_miwae_groups_interpolate_between_iwae_and_vae():
    model = random_model(SMALL_2, seed=2)
    x = binary_x(3, 10)
    k = 6
    noise = make_noise(model, k, 3, seed=4)
    params = list(model.parameters())
    iw, va = run(model, "iwae", x, k, noise), run(model, "vae", x, k, noise)
    m1, mk = run(model, "miwae", x, k, noise, groups=1), run(model, "miwae", x, k, noise, groups=k)
    torch.testing.assert_close(m1.bound, iw.bound, rtol=0, atol=1e-12)
    torch.testing.assert_close(mk.bound, va.bound, rtol=0, atol=1e-12)
    assert_same(grads(m1.loss, params), grads(iw.loss, params))
    assert_same(grads(mk.loss, params), grads(va.loss, params))
    m2 = run(model, "miwae", x, k, noise, groups=2)
    torch.testing.assert_close(m2.bound, multi_sample_bound(model.log_weights(x, k, noise), 2))
    assert torch.all(m2.bound < iw.bound) and torch.all(m2.bound > va.bound)


def test_ciwae_endpoints_and_mixture():
    model = random_model(SMALL_1, seed=3)
    x = binary_x(3, 10)
    k = 5
    noise = make_noise(model, k, 3, seed=6)
    params = list(model.parameters())
    iw, va = run(model, "iwae", x, k, noise), run(model, "vae", x, k, noise)
    c1, c0 = run(model, "ciwae", x, k, noise, beta=1.0), run(model, "ciwae", x, k, noise, beta=0.0)
    torch.testing.assert_close(c1.bound, va.bound, rtol=0, atol=1e-12)
    torch.testing.assert_close(c0.bound, iw.bound, rtol=0, atol=1e-12)
    assert_same(grads(c1.loss, params), grads(va.loss, params))
    assert_same(grads(c0.loss, params), grads(iw.loss, params))
    c = run(model, "ciwae", x, k, noise, beta=0.3)
    torch.testing.assert_close(c.bound, 0.3 * va.bound + 0.7 * iw.bound)
    mixed = [0.3 * a + 0.7 * b for a, b in zip(grads(va.loss, params), grads(iw.loss, params), strict=True)]
    assert_same(grads(c.loss, params), mixed)


def test_renyi_bound_runs_from_l_k_to_the_elbo_as_alpha_grows():
    """L_a is the log of the power mean of order 1 - a of the weights: non-increasing in a, L_k at a = 0, L_VAE
    at a = 1, strictly between them otherwise (unequal weights), and all equal when the weights are."""
    g = torch.Generator().manual_seed(3)
    log_w = 3 * torch.randn(20, 50, generator=g, dtype=F64) - 90
    values = [renyi_bound(log_w, a) for a in (0.0, 0.1, 0.5, 0.9, 1.0)]
    assert torch.equal(values[0], importance_weighted_bound(log_w))
    assert torch.equal(values[-1], elbo(log_w))
    for larger, smaller in zip(values, values[1:], strict=False):
        assert torch.all(smaller <= larger + 1e-12)
    for value in values[1:4]:
        assert torch.all(elbo(log_w) < value) and torch.all(value < importance_weighted_bound(log_w))
    # the log-space formula near a = 1: L_VAE + (1 - a) Var(log w) / 2 + ..., so within 1e-5 for Var = 9
    torch.testing.assert_close(renyi_bound(log_w, 1 - 1e-6), elbo(log_w), rtol=0, atol=1e-5)
    # the definition, 1/(1-a) log 1/k sum_i w_i^(1-a), with w exponentiated directly (log w near 0: no underflow)
    w = torch.exp(log_w + 90)
    torch.testing.assert_close(renyi_bound(log_w + 90, 0.5), 2 * torch.log(torch.sqrt(w).mean(0)))
    same = torch.full((6, 3), -2.5, dtype=F64)
    torch.testing.assert_close(renyi_bound(same, 0.5), elbo(same))


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_vr_limits_are_iwae_at_alpha_0_and_the_vae_at_alpha_1(arch):
    model = random_model(arch, seed=12, scale=0.5)
    x = binary_x(3, arch.x_dim)
    k = 5
    noise = make_noise(model, k, 3, seed=9)
    params = list(model.parameters())
    iw, va = run(model, "iwae", x, k, noise), run(model, "vae", x, k, noise)
    at_0, at_1 = run(model, "vr", x, k, noise, alpha=0.0), run(model, "vr", x, k, noise, alpha=1.0)
    assert torch.equal(at_0.bound, iw.bound) and torch.equal(at_0.loss, iw.loss)
    assert_same(grads(at_0.loss, params), grads(iw.loss, params), rtol=0, atol=0)
    assert torch.equal(at_1.bound, va.bound)
    assert_same(grads(at_1.loss, params), grads(va.loss, params), rtol=0, atol=0)
    # the limit alpha -> 1 of the log-space formula itself: within O(1 - alpha) of the ELBO
    near = run(model, "vr", x, k, noise, alpha=1 - 1e-6)
    torch.testing.assert_close(near.bound, va.bound, rtol=0, atol=1e-5)
    assert_same(grads(near.loss, params), grads(va.loss, params), rtol=1e-4, atol=1e-5)
    assert (flat(grads(near.loss, params)) - flat(grads(iw.loss, params))).abs().max() > 1e-3


def test_vr_gradient_is_the_tempered_weight_average():
    """grad L_a = sum_i v_i grad log w_i with v = softmax((1 - a) log w), from k separate autograd calls."""
    model = random_model(SMALL_1, seed=4, scale=0.5)
    batch, k, alpha = 3, 4, 0.5
    x = binary_x(batch, 10)
    noise = make_noise(model, k, batch, seed=5)
    params = list(model.parameters())
    est = run(model, "vr", x, k, noise, alpha=alpha)
    log_w = model.log_weights(x, k, noise)
    v = torch.softmax((1 - alpha) * log_w.detach(), 0)
    expected = torch.zeros_like(flat(params))
    for b in range(batch):
        for i in range(k):
            expected -= v[i, b] * flat(grads(log_w[i, b], params))
    torch.testing.assert_close(flat(grads(est.loss, params)), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# gradient estimators that treat the encoder differently


def path_gradient(model: IWAEModel, x, k: int, noise, power: int) -> list[torch.Tensor]:
    """Encoder gradient of -sum_b sum_i w~_i^power (d log w_i / d h_i)(d h_i / d phi), log q's parameters
    held constant: power 1 is STL, power 2 is DReG. Written from the formula, without the estimators' code."""
    enc = encoder_params(model)
    hs, _ = model.sample_posterior(x, k, noise)
    leaves = [h.detach().requires_grad_() for h in hs]
    frozen = IWAEModel(model.arch).to(F64)
    frozen.load_state_dict(model.state_dict())
    for p in frozen.parameters():
        p.requires_grad_(False)
    log_w = frozen.log_joint(x, leaves) - frozen.log_posterior(x, leaves)  # a function of h only
    partials = torch.autograd.grad(log_w.sum(), leaves)
    w = torch.softmax(log_w.detach(), 0).unsqueeze(-1) ** power
    out = torch.autograd.grad(hs, enc, grad_outputs=[-w * d for d in partials], allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(enc, out, strict=True)]


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_stl_same_bound_and_decoder_gradient_different_encoder_gradient(arch):
    model = random_model(arch, seed=5, scale=0.5)
    x = binary_x(3, arch.x_dim)
    k = 5
    noise = make_noise(model, k, 3, seed=7)
    iw, st = run(model, "iwae", x, k, noise), run(model, "stl", x, k, noise)
    torch.testing.assert_close(st.bound, iw.bound, rtol=0, atol=1e-12)
    dec_iw, enc_iw = split_grads(model, iw)
    dec_st, enc_st = split_grads(model, st)
    assert_same(dec_st, dec_iw)
    assert (flat(enc_st) - flat(enc_iw)).abs().max() > 1e-4
    assert_same(enc_st, path_gradient(model, x, k, noise, power=1))


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_dreg_decoder_gradient_is_iwae_and_encoder_gradient_is_doubly_reparameterised(arch):
    model = random_model(arch, seed=6, scale=0.5)
    x = binary_x(3, arch.x_dim)
    k = 5
    noise = make_noise(model, k, 3, seed=8)
    iw, dr = run(model, "iwae", x, k, noise), run(model, "dreg", x, k, noise)
    torch.testing.assert_close(dr.bound, iw.bound, rtol=0, atol=1e-12)
    assert dr.encoder_loss is None
    dec_iw, enc_iw = split_grads(model, iw)
    dec_dr, enc_dr = split_grads(model, dr)
    assert_same(dec_dr, dec_iw)
    assert_same(enc_dr, path_gradient(model, x, k, noise, power=2))
    assert (flat(enc_dr) - flat(enc_iw)).abs().max() > 1e-4
    assert (flat(enc_dr) - flat(path_gradient(model, x, k, noise, power=1))).abs().max() > 1e-4


def test_dreg_backward_fills_the_same_grads_as_autograd_grad():
    """Training calls loss.backward(): the hook that squares the weights acts there too (and only once)."""
    model = random_model(SMALL_2, seed=8)
    x = binary_x(2, 10)
    noise = make_noise(model, 4, 2, seed=1)
    expected = flat(path_gradient(model, x, 4, noise, power=2))
    run(model, "dreg", x, 4, noise).loss.backward()
    torch.testing.assert_close(
        flat([p.grad for p in encoder_params(model)]), expected, rtol=1e-10, atol=1e-12
    )


def encoder_gradient_draws(model, name: str, x, k: int, n: int, seed: int) -> torch.Tensor:
    """[n, n_encoder_params] encoder gradients of one objective over n independent noise draws."""
    out = []
    for d in range(n):
        noise = make_noise(model, k, x.shape[0], seed=seed + d)
        _, enc = split_grads(model, run(model, name, x, k, noise))
        out.append(flat(enc))
    return torch.stack(out)


def paired_z(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """z-scores of the mean paired difference per coordinate (coordinates that never vary are left out)."""
    keep = g_ref.std(0) > 0
    diff = (g - g_ref)[:, keep]
    return diff.mean(0) / (diff.std(0) / math.sqrt(len(diff)))


@pytest.mark.parametrize("arch", [TINY_1, TINY_2], ids=["1-layer", "2-layer"])
def test_dreg_encoder_gradient_is_unbiased_for_iwae_with_lower_variance(arch):
    # a weak decoder and an encoder near the prior: q is close to the posterior, the regime DReG is built for
    model = random_model(arch, seed=11, scale=0.2)
    x = binary_x(1, arch.x_dim, seed=3)
    k, n = 20, 300
    g_iw = encoder_gradient_draws(model, "iwae", x, k, n, seed=100)
    g_dr = encoder_gradient_draws(model, "dreg", x, k, n, seed=100)  # the same noise: a paired comparison
    # unbiased: E[DReG] = E[IWAE] = grad L_k; the paired mean difference is within Monte-Carlo error
    z = paired_z(g_dr, g_iw)
    assert len(z) > 20
    assert z.abs().max() < 4.5
    assert (z**2).mean() < 2.0  # ~1 for an unbiased estimator
    # the point of DReG: a much lower variance than the IWAE encoder gradient
    assert g_dr.var(0).sum() < 0.2 * g_iw.var(0).sum()
    # the check has power: STL (w~ in place of w~^2) is biased for k > 1, and fails it by far
    g_st = encoder_gradient_draws(model, "stl", x, k, n, seed=100)
    assert (paired_z(g_st, g_iw) ** 2).mean() > 10.0


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_piwae_decoder_follows_iwae_encoder_follows_miwae(arch):
    model = random_model(arch, seed=9, scale=0.5)
    x = binary_x(3, arch.x_dim)
    k, groups = 6, 3
    noise = make_noise(model, k, 3, seed=2)
    pi = run(model, "piwae", x, k, noise, groups=groups)
    iw = run(model, "iwae", x, k, noise)
    mi = run(model, "miwae", x, k, noise, groups=groups)
    torch.testing.assert_close(pi.bound, iw.bound, rtol=0, atol=1e-12)
    assert pi.encoder_loss is not None
    dec_pi, enc_pi = split_grads(model, pi)
    assert_same(dec_pi, grads(iw.loss, decoder_params(model)))
    assert_same(enc_pi, grads(mi.loss, encoder_params(model)))
    assert (flat(enc_pi) - flat(grads(iw.loss, encoder_params(model)))).abs().max() > 1e-4


@pytest.mark.parametrize("arch", [SMALL_1, SMALL_2], ids=["1-layer", "2-layer"])
def test_rws_decoder_follows_iwae_encoder_is_wake_phi(arch):
    model = random_model(arch, seed=10, scale=0.5)
    batch, k = 3, 5
    x = binary_x(batch, arch.x_dim)
    noise = make_noise(model, k, batch, seed=3)
    rw, iw = run(model, "rws", x, k, noise), run(model, "iwae", x, k, noise)
    torch.testing.assert_close(rw.bound, iw.bound, rtol=0, atol=1e-12)
    dec_rw, enc_rw = split_grads(model, rw)
    assert_same(dec_rw, grads(iw.loss, decoder_params(model)))
    # wake-phi: -sum_b sum_i w~_i grad_phi log q(h_i | x), samples held fixed
    enc = encoder_params(model)
    hs, _ = model.sample_posterior(x, k, noise)
    hs = [h.detach() for h in hs]
    log_q = model.log_posterior(x, hs)
    w = torch.softmax((model.log_joint(x, hs) - log_q).detach(), 0)
    expected = torch.zeros_like(flat(enc_rw))
    for b in range(batch):
        for i in range(k):
            expected -= w[i, b] * flat(grads(log_q[i, b], enc))
    torch.testing.assert_close(flat(enc_rw), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# build_objective


def test_build_objective_binds_parameters():
    model = random_model(SMALL_1, seed=0)
    x = binary_x(2, 10)
    noise = make_noise(model, 6, 2, seed=0)
    for name, params in (("miwae", {"groups": 3}), ("ciwae", {"beta": 0.25}), ("vr", {"alpha": 0.3})):
        est = build_objective(name, params, 6)(model, x, 6, noise)
        torch.testing.assert_close(est.bound, run(model, name, x, 6, noise, **params).bound, rtol=0, atol=0)
        other = run(model, name, x, 6, noise, **{p: 1 for p in params})  # another value: another bound
        assert (est.bound - other.bound).abs().max() > 1e-6
    for name in [name for name, declared in OBJECTIVES.items() if not declared.parameters]:
        est = build_objective(name, {}, 6)(model, x, 6, noise)
        torch.testing.assert_close(est.bound, run(model, name, x, 6, noise).bound, rtol=0, atol=0)
    est = build_objective("piwae", {"groups": 2}, 6)(model, x, 6, noise)
    torch.testing.assert_close(est.encoder_loss, run(model, "piwae", x, 6, noise, groups=2).encoder_loss)


@pytest.mark.parametrize(
    "build", [build_objective, build_log_weight_bound], ids=["build_objective", "build_log_weight_bound"]
)
@pytest.mark.parametrize(
    "cfg, k, match",
    [
        ({"name": "nope"}, 5, "unknown objective model=nope; choose one of vae, iwae, "),
        ({"name": "miwae", "groups": 3}, 5, "divide k"),
        ({"name": "piwae", "groups": 4}, 50, "divide k"),
        ({"name": "miwae", "groups": 0}, 5, "divide k"),
        ({"name": "miwae"}, 6, r"model.groups \(M=5\) must divide k=6"),  # the declared default
        ({"name": "miwae", "groups": 2.5}, 5, "model.groups must be of type int, got 2.5"),
        ({"name": "ciwae", "beta": 1.5}, 5, "beta"),
        ({"name": "ciwae", "beta": -0.1}, 5, "beta"),
        ({"name": "ciwae", "beta": "half"}, 5, "model.beta must be of type float, got 'half'"),
        ({"name": "vr", "alpha": 1.5}, 5, r"model.alpha must lie in \[0, 1\] for vr"),
        ({"name": "vr", "alpha": -0.5}, 5, r"model.alpha must lie in \[0, 1\] for vr"),
        ({"name": "iwae", "alpha": 0.5}, 5, r"model=iwae has no parameter model.alpha \(it takes: none\)"),
        ({"name": "vr", "alhpa": 0.5}, 5, r"model=vr has no parameter model.alhpa \(it takes: model.alpha\)"),
        ({"name": "stl", "groups": 5}, 5, "model=stl has no parameter model.groups"),
    ],
)
def test_an_objective_with_bad_parameters_is_refused(build, cfg, k, match):
    params = {key: value for key, value in cfg.items() if key != "name"}
    with pytest.raises(ConfigError, match=match):
        build(cfg["name"], params, k)
