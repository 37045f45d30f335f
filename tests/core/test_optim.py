"""The two Adam variants: torch's Adam for `optim=paper`, the authors' update for `optim=original_code`."""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from iwae_cli.core.optim import OptimSpec, OriginalCodeAdam, build_optimizer, fast_step, set_learning_rate
from iwae_cli.errors import ConfigError
from iwae_cli.specs.run import optim_spec as spec_from_config

CONF = Path(__file__).resolve().parents[2] / "conf"
F64 = torch.float64


def optim_spec(name: str) -> OptimSpec:
    """conf/optim/<name>.yaml as build_optimizer takes it."""
    return spec_from_config(OmegaConf.load(CONF / "optim" / f"{name}.yaml"))


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(4, 3, generator=g, dtype=F64).requires_grad_(),
        torch.randn(5, generator=g, dtype=F64).requires_grad_(),
    ]


def gradient_sequence(n_steps: int, shapes, seed: int = 1) -> list[list[torch.Tensor]]:
    """Gradients of varying sign and size (some large, some tiny), one list per step."""
    g = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(s, generator=g, dtype=F64) * 10 ** torch.randint(-3, 2, s, generator=g) for s in shapes]
        for _ in range(n_steps)
    ]


def apply(optimizer: torch.optim.Optimizer, params, grads_per_step) -> None:
    for step_grads in grads_per_step:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()


def reference_original_adam(params, grads_per_step, lr: float, b1: float, b2: float, eps: float):
    """The authors' update: m, v (v starts at ONES), alpha_t = lr sqrt(1-b2^t)/(1-b1^t), t from 1, and the
    parameters moved with the moments from before the call (Theano computes every update from the old values)."""
    ps = [p.detach().clone() for p in params]
    ms = [torch.zeros_like(p) for p in ps]
    vs = [torch.ones_like(p) for p in ps]
    for t, step_grads in enumerate(grads_per_step, start=1):
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(step_grads):
            ps[i] = ps[i] - alpha * ms[i] / (torch.sqrt(vs[i]) + eps)
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
    return ps


def reference_kingma_adam(params, grads_per_step, lr: float, b1: float, b2: float, eps: float):
    """Kingma & Ba's Adam (v from zeros, bias-corrected moments, eps outside the square root)."""
    ps = [p.detach().clone() for p in params]
    ms = [torch.zeros_like(p) for p in ps]
    vs = [torch.zeros_like(p) for p in ps]
    for t, step_grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(step_grads):
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            m_hat, v_hat = ms[i] / (1 - b1**t), vs[i] / (1 - b2**t)
            ps[i] = ps[i] - lr * m_hat / (torch.sqrt(v_hat) + eps)
    return ps


# ----------------------------------------------------------------------------------------------------------
# build_optimizer


def test_paper_optimiser_is_torch_adam_with_the_papers_settings():
    cfg = optim_spec("paper")
    params = make_params()
    opt = build_optimizer(params, cfg, lr=1e-3)
    assert type(opt) is torch.optim.Adam
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999)
    assert group["eps"] == 1e-4
    assert group["lr"] == 1e-3
    assert group["weight_decay"] == 0 and not group["amsgrad"]
    # and it follows Kingma & Ba's update with those settings
    grads = gradient_sequence(6, [p.shape for p in params])
    expected = reference_kingma_adam(params, grads, 1e-3, 0.9, 0.999, 1e-4)
    apply(opt, params, grads)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-14)


def test_original_code_config_builds_the_authors_adam():
    cfg = optim_spec("original_code")
    params = make_params()
    opt = build_optimizer(params, cfg, lr=1e-3)
    assert type(opt) is OriginalCodeAdam
    group = opt.param_groups[0]
    assert group["betas"] == (0.99, 0.999) and group["eps"] == 1e-4 and group["lr"] == 1e-3


@pytest.mark.parametrize(
    "override, match",
    [
        ({"beta1": 1.0}, "beta1"),
        ({"beta1": -0.1}, "beta1"),
        ({"beta2": 1.0}, "beta1, beta2"),
        ({"beta2": 1.5}, "beta1, beta2"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-8}, "eps"),
        ({"variant": "adamw"}, "unknown optim.variant=adamw"),
    ],
)
def test_build_optimizer_rejects_bad_settings(override, match):
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "optim" / "paper.yaml"), override)
    with pytest.raises(ConfigError, match=match):
        build_optimizer(make_params(), spec_from_config(cfg), lr=1e-3)


# ----------------------------------------------------------------------------------------------------------
# OriginalCodeAdam


@pytest.mark.parametrize("b1, b2, eps, lr", [(0.99, 0.999, 1e-4, 1e-3), (0.9, 0.99, 1e-2, 0.05)])
def test_original_code_adam_matches_the_authors_update(b1, b2, eps, lr):
    params = make_params(3)
    grads = gradient_sequence(8, [p.shape for p in params], seed=4)
    expected = reference_original_adam(params, grads, lr, b1, b2, eps)
    opt = OriginalCodeAdam(params, lr=lr, betas=(b1, b2), eps=eps)
    apply(opt, params, grads)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-14)
    for p in params:
        assert float(opt.state[p]["step"]) == 8
    # it is not torch's Adam: v starting at ones makes small-gradient steps much shorter
    torch_params = make_params(3)
    apply(torch.optim.Adam(torch_params, lr=lr, betas=(b1, b2), eps=eps), torch_params, grads)
    assert max((p - q).abs().max() for p, q in zip(params, torch_params, strict=True)) > 1e-4


def test_original_code_adam_lags_one_step_and_its_second_step_is_tiny_for_small_gradients():
    """m_0 = 0: the first call does not move; the second moves by alpha_2 (1-b1) g_1 / (sqrt(b2 + (1-b2) g_1^2)
    + eps) with v_0 = 1 -- not ~lr sign(g) as Kingma & Ba's Adam would."""
    p = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = OriginalCodeAdam([p], lr=1e-3, betas=(0.99, 0.999), eps=1e-4)
    g = torch.tensor([1e-3, -0.5, 20.0], dtype=F64)
    p.grad = g.clone()
    opt.step()
    assert torch.equal(p.detach(), torch.zeros(3, dtype=F64))
    p.grad = torch.full((3,), 123.0, dtype=F64)  # the second gradient only enters the moments
    opt.step()
    alpha = 1e-3 * math.sqrt(1 - 0.999**2) / (1 - 0.99**2)
    expected = -alpha * 0.01 * g / (torch.sqrt(0.999 + 0.001 * g * g) + 1e-4)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=0)


def test_original_code_adam_skips_parameters_without_gradient():
    a, b = make_params(5)
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt = OriginalCodeAdam([a, b], lr=1e-2, betas=(0.9, 0.999), eps=1e-4)
    a.grad = torch.ones_like(a)
    opt.step()
    opt.step()  # the authors' update moves with the previous step's moments: the second call moves `a`
    assert not torch.equal(a.detach(), a0)
    assert torch.equal(b.detach(), b0)
    assert b not in opt.state or not opt.state[b]
    opt.zero_grad()
    opt.step()  # no gradients at all: nothing moves, nothing fails
    assert torch.equal(b.detach(), b0)


def test_original_code_adam_param_groups_have_their_own_learning_rate():
    a, b = make_params(6)
    grads = gradient_sequence(3, [a.shape, b.shape], seed=7)
    opt = OriginalCodeAdam(
        [{"params": [a]}, {"params": [b], "lr": 0.1}], lr=1e-3, betas=(0.9, 0.999), eps=1e-4
    )
    exp_a = reference_original_adam([a], [[g[0]] for g in grads], 1e-3, 0.9, 0.999, 1e-4)[0]
    exp_b = reference_original_adam([b], [[g[1]] for g in grads], 0.1, 0.9, 0.999, 1e-4)[0]
    apply(opt, [a, b], grads)
    torch.testing.assert_close(a.detach(), exp_a, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b.detach(), exp_b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("variant", ["original_code", "paper"])
def test_state_dict_round_trip_continues_identically(variant):
    cfg = optim_spec(f"{variant}")
    params = make_params(8)
    grads = gradient_sequence(7, [p.shape for p in params], seed=9)
    opt = build_optimizer(params, cfg, lr=1e-2)
    apply(opt, params, grads[:4])

    buffer = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = [p.clone().requires_grad_() for p in saved["params"]]
    opt2 = build_optimizer(resumed, cfg, lr=0.5)  # the loaded state carries the learning rate too
    opt2.load_state_dict(saved["optim"])
    assert opt2.param_groups[0]["lr"] == 1e-2

    apply(opt, params, grads[4:])
    apply(opt2, resumed, grads[4:])
    for p, q in zip(params, resumed, strict=True):
        assert torch.equal(p.detach(), q.detach())
    if variant == "original_code":
        expected = reference_original_adam(make_params(8), grads, 1e-2, 0.99, 0.999, 1e-4)
        for q, e in zip(resumed, expected, strict=True):
            torch.testing.assert_close(q.detach(), e, rtol=1e-12, atol=1e-14)


def test_state_dict_round_trip_restores_moments_not_fresh_ones():
    """A resumed optimiser that silently restarted (m = 0, v = 1, t = 1) would take different steps."""
    cfg = optim_spec("original_code")
    params = make_params(8)
    grads = gradient_sequence(5, [p.shape for p in params], seed=9)
    opt = build_optimizer(params, cfg, lr=1e-2)
    apply(opt, params, grads[:4])
    state = copy.deepcopy(opt.state_dict())
    fresh_params = [p.detach().clone().requires_grad_() for p in params]
    fresh = build_optimizer(fresh_params, cfg, lr=1e-2)
    loaded_params = [p.detach().clone().requires_grad_() for p in params]
    loaded = build_optimizer(loaded_params, cfg, lr=1e-2)
    loaded.load_state_dict(state)
    apply(fresh, fresh_params, grads[4:])
    apply(loaded, loaded_params, grads[4:])
    apply(opt, params, grads[4:])
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(params, loaded_params, strict=True))
    assert not all(torch.equal(p.detach(), q.detach()) for p, q in zip(params, fresh_params, strict=True))


# ----------------------------------------------------------------------------------------------------------
# set_learning_rate


@pytest.mark.parametrize("variant", ["original_code", "paper"])
def test_set_learning_rate_changes_every_group_and_the_step(variant):
    cfg = optim_spec(f"{variant}")
    a, b = make_params(10)
    opt = build_optimizer([{"params": [a]}, {"params": [b]}], cfg, lr=1e-3)
    set_learning_rate(opt, 7.2e-4)
    assert [group["lr"] for group in opt.param_groups] == [7.2e-4, 7.2e-4]

    # the step scales with the learning rate (same state, same gradient)
    def one_step(lr: float) -> torch.Tensor:
        p = torch.zeros(3, dtype=F64, requires_grad=True)
        o = build_optimizer([p], cfg, lr=1.0)
        set_learning_rate(o, lr)
        p.grad = torch.tensor([0.3, -2.0, 5.0], dtype=F64)
        o.step()
        return p.detach().clone()

    torch.testing.assert_close(one_step(2e-4), 0.5 * one_step(4e-4), rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------------------------------------
# fast_step


def test_fast_step_is_torch_fused_adam_bit_for_bit_across_a_stage_change_and_a_reload():
    """The compiled training step moves the parameters with fast_step: it must equal optimizer.step() exactly,
    also after set_learning_rate and after load_state_dict (which replaces the parameter groups)."""
    cfg = optim_spec("paper")
    reference = [p.detach().float().requires_grad_() for p in make_params(3)]
    fast = [p.detach().clone().requires_grad_() for p in reference]
    grads = [[g.float() for g in step] for step in gradient_sequence(9, [p.shape for p in reference], seed=4)]
    ref_opt, fast_opt = build_optimizer(reference, cfg, 1e-2), build_optimizer(fast, cfg, 1e-2)
    if not fast_opt.param_groups[0].get("fused"):
        pytest.skip("this torch has no fused Adam on CPU; fast_step is optimizer.step")
    torch_steps = []  # step pre-hooks run only inside torch's own step()
    fast_opt.register_step_pre_hook(lambda *_: torch_steps.append(1))
    step = fast_step(fast_opt)
    for i, step_grads in enumerate(grads):
        if i == 3:
            set_learning_rate(ref_opt, 3e-3)
            set_learning_rate(fast_opt, 3e-3)
        if i == 6:
            fast_opt.load_state_dict(copy.deepcopy(fast_opt.state_dict()))
            set_learning_rate(ref_opt, 1e-3)
            set_learning_rate(fast_opt, 1e-3)
        for p, q, g in zip(reference, fast, step_grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ref_opt.step()
        step()
    assert len(torch_steps) == 1  # torch's step created the state; the other 8 launched the kernel directly
    assert all(torch.equal(p, q) for p, q in zip(reference, fast, strict=True))
    assert torch.equal(ref_opt.state_dict()["state"][0]["step"], fast_opt.state_dict()["state"][0]["step"])
    assert not torch.equal(reference[0], make_params(3)[0].float())  # the parameters did move


def test_fast_step_is_the_optimisers_own_step_for_the_authors_adam():
    params = make_params(2)
    opt = build_optimizer(params, optim_spec("original_code"), 1e-3)
    assert fast_step(opt) == opt.step


def test_fast_step_leaves_a_parameter_without_gradient_alone_as_torch_does():
    cfg = optim_spec("paper")
    reference = [p.detach().float().requires_grad_() for p in make_params(5)]
    fast = [p.detach().clone().requires_grad_() for p in reference]
    ref_opt, fast_opt = build_optimizer(reference, cfg, 1e-2), build_optimizer(fast, cfg, 1e-2)
    step = fast_step(fast_opt)
    for i in range(4):
        for p, q in zip(reference, fast, strict=True):
            g = torch.full_like(p, 0.1 * (i + 1))
            p.grad, q.grad = (g.clone(), g.clone()) if i != 2 or p is reference[0] else (None, None)
        ref_opt.step()
        step()
    assert all(torch.equal(p, q) for p, q in zip(reference, fast, strict=True))


# ----------------------------------------------------------------------------------------------------------
# The authors' update on the authors' gradient scale (the loss is minus the SUM of the bound over the minibatch)


def authors_updates(model, batches, k: int, lr: float, b1: float, b2: float, eps: float) -> list[torch.Tensor]:
    """An independent re-implementation of the authors' training step as docs/protocol.md states it: the
    gradient of -sum_x L_k(x) over the minibatch; m from zeros and v from ONES; the parameters move with the
    moments of the previous step; eps added to sqrt(v); alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t), t from 1."""
    from iwae_cli.core.objectives import importance_weighted_bound

    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.ones_like(p) for p in params]
    for t, (x, noise) in enumerate(batches, start=1):
        log_w = torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x, k, noise))
        grads = torch.autograd.grad(-importance_weighted_bound(log_w).sum(), params)
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        with torch.no_grad():
            params = [p - alpha * m / (torch.sqrt(v) + eps) for p, m, v in zip(params, ms, vs, strict=True)]
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, grads, strict=True)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, grads, strict=True)]
        params = [p.requires_grad_() for p in params]
    return [p.detach() for p in params]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_three_original_code_steps_equal_the_authors_update_on_the_summed_gradient(reduction):
    from iwae_cli.core.model import Architecture, IWAEModel, initialise
    from iwae_cli.core.objectives import build_objective
    from iwae_cli.training.step import draw_minibatch, train_step

    arch = Architecture(latent_units=(3,), encoder_hidden=((6,),), decoder_hidden=((6,),), x_dim=10)
    model = IWAEModel(arch).double()
    initialise(model, torch.full((10,), 0.3, dtype=F64), seed=0)
    cfg = optim_spec("original_code")
    x = torch.rand(20, 10, generator=torch.Generator().manual_seed(2), dtype=F64)  # one fixed minibatch
    k, lr = 4, 1e-2
    # the draws the training step will make, replayed from a twin generator
    twin = torch.Generator().manual_seed(7)
    batches = [draw_minibatch(model, x, k, twin) for _ in range(3)]
    expected = authors_updates(model, batches, k, lr, *cfg.betas, cfg.eps)

    optimizer = build_optimizer(model.parameters(), cfg, lr)
    objective, generator = build_objective("iwae", {}, k, reduction), torch.Generator().manual_seed(7)
    for _ in range(3):
        train_step(model, optimizer, objective, x, k, generator)
    gap = max(float((p.detach() - e).abs().max()) for p, e in zip(model.parameters(), expected, strict=True))
    if reduction == "sum":
        assert gap < 1e-12
    else:  # the mean's 20x smaller gradient meets v's initial ones: visibly different steps
        assert gap > 1e-4
