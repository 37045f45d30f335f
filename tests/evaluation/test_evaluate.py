"""Evaluation: the k-sample estimate of log p(x) against exact integration, NLL summaries, active units."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from iwae_cli.core.activity import (
    ACTIVITY_THRESHOLD,
    active_masks,
    activity_entry,
    activity_statistics,
    count_active,
    entry_masks,
    expected_activity_statistics,
    recorded_matches,
    rule_text,
    units_label,
)
from iwae_cli.core.estimators import NLLEstimate, estimate_nll, log_likelihood_estimates
from iwae_cli.core.model import Architecture, IWAEModel, initialise
from iwae_cli.core.noise import binarize
from iwae_cli.core.objectives import importance_weighted_bound
from iwae_cli.data.loading import load_dataset, training_pixel_means
from iwae_cli.reports.evaluation_plots import plot_activity_histogram

F64 = torch.float64
# two latent units: log p(x) = log of a 2-D integral, which a fine grid computes exactly
GRID_ARCH = Architecture(latent_units=(2,), encoder_hidden=((16,),), decoder_hidden=((16,),), x_dim=20)
SMALL_2 = Architecture(
    latent_units=(5, 3), encoder_hidden=((8,), (6,)), decoder_hidden=((8,), (6,)), x_dim=12
)
PAPER_2 = Architecture(
    latent_units=(100, 50), encoder_hidden=((200, 200), (100, 100)), decoder_hidden=((200, 200), (100, 100))
)


def random_model(arch: Architecture, seed: int, decoder_scale: float = 1.0, encoder_scale: float = 0.5):
    """A float64 model with random weights and biases; the decoder's scale sets how peaked p(h | x) is."""
    torch.manual_seed(seed)
    model = IWAEModel(arch).to(F64)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = decoder_scale if name.startswith("decoders") else encoder_scale
            p.copy_(scale * torch.randn_like(p) / math.sqrt(p.shape[-1]))
    return model


def data_from_model(model: IWAEModel, n: int, seed: int) -> torch.Tensor:
    """n binary examples drawn from the model itself (so they are typical, not arbitrary, for p)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        h = torch.randn(n, model.arch.latent_units[-1], generator=g, dtype=F64)
        return torch.bernoulli(torch.sigmoid(model.decoders[0](h)), generator=g)


def exact_log_marginal(model: IWAEModel, x: torch.Tensor, n: int = 400, limit: float = 8.0) -> torch.Tensor:
    """log p(x) = log of the integral of p(x, h) over an n x n grid on [-limit, limit]^2 (midpoint rule)."""
    edges = torch.linspace(-limit, limit, n + 1, dtype=F64)
    centres = (edges[1:] + edges[:-1]) / 2
    cell = (2 * limit / n) ** 2
    h = torch.stack(torch.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 1, 2)  # [n*n, 1, 2]
    with torch.no_grad():  # 20,000 grid points at a time keeps memory small
        log_joint = torch.cat([model.log_joint(x, [part]) for part in h.split(20_000)])  # [n*n, batch]
    return torch.logsumexp(log_joint, 0) + math.log(cell)


@pytest.fixture(scope="module")
def grid_setup():
    """A 2-latent model with a non-trivial posterior, its encoder fitted to six examples, the exact log p(x).

    A random encoder is so far from p(h | x) that even 5000 importance samples can miss by nats; a short IWAE
    fit of the encoder alone (the decoder, hence p(x), stays fixed) gives a q that covers the posterior.
    """
    model = random_model(GRID_ARCH, seed=0, decoder_scale=2.0)
    x = data_from_model(model, 6, seed=1)
    untrained = random_model(GRID_ARCH, seed=0, decoder_scale=2.0)
    exact = exact_log_marginal(model, x)
    optimizer = torch.optim.Adam(model.encoders.parameters(), lr=0.02)
    torch.manual_seed(0)
    for _ in range(200):
        optimizer.zero_grad()
        (-importance_weighted_bound(model.log_weights(x, 20)).sum()).backward()  # the IWAE loss
        optimizer.step()
    torch.testing.assert_close(exact_log_marginal(model, x), exact, rtol=0, atol=1e-12)  # p(x) unchanged
    return model, untrained, x, exact


# ----------------------------------------------------------------------------------------------------------
# L_k against the exact log-likelihood


def test_exact_integral_is_converged(grid_setup):
    model, _, x, exact = grid_setup
    finer = exact_log_marginal(model, x, n=560, limit=10.0)  # finer cells, wider domain
    torch.testing.assert_close(finer, exact, rtol=0, atol=1e-6)
    # the posterior is not trivial: the likelihood term moves log p(x) far from any fixed value
    assert exact.max() - exact.min() > 1.0 and (exact < -5).all()


def test_l5000_agrees_with_exact_log_likelihood(grid_setup):
    model, _, x, exact = grid_setup
    est = log_likelihood_estimates(model, x, 5000, torch.Generator().manual_seed(3), progress=False)
    assert est.dtype == F64 and est.shape == (6,)
    err = est - exact
    assert err.abs().mean() < 0.05
    assert err.abs().max() < 0.1
    # L_k is a lower bound in expectation: it does not overshoot on average
    assert err.mean() < 0.02


def test_lk_increases_with_k_towards_log_likelihood(grid_setup):
    _, untrained, x, _ = grid_setup
    exact = exact_log_marginal(untrained, x)
    means = []
    for k in (1, 10, 100, 1000):
        runs = [
            log_likelihood_estimates(untrained, x, k, torch.Generator().manual_seed(s), progress=False)
            for s in range(4)
        ]
        means.append(torch.stack(runs).mean().item())
    assert means == sorted(means)
    assert means[1] - means[0] > 0.5 and means[3] - means[2] > 0.05
    assert means[-1] < exact.mean().item() + 0.05  # still below log p(x)
    assert exact.mean().item() - means[0] > 2.0  # the untrained q is poor: the gap at k=1 is large


def test_chunk_size_does_not_change_the_estimate(grid_setup):
    model, _, x, _ = grid_setup
    results = [
        log_likelihood_estimates(model, x, 5000, torch.Generator().manual_seed(9), chunk=c, progress=False)
        for c in (7, 100, 5000)
    ]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=1e-9)
    different = log_likelihood_estimates(model, x, 5000, torch.Generator().manual_seed(10), progress=False)
    assert not torch.equal(different, results[0])


@pytest.mark.parametrize("k, chunk", [(1, 500), (6, 4)])
def test_estimate_is_log_mean_exp_of_the_log_weights(k, chunk):
    """L_k(x) = logsumexp(log w) - log k, with all noise of a minibatch drawn first from the generator."""
    model = random_model(SMALL_2, seed=4)
    x = (torch.rand(7, 12, generator=torch.Generator().manual_seed(1), dtype=F64) < 0.5).to(F64)
    est = log_likelihood_estimates(model, x, k, torch.Generator().manual_seed(2), 4, chunk, progress=False)
    gen = torch.Generator().manual_seed(2)
    expected = []
    for batch in x.split(4):
        noise = [torch.randn(s, generator=gen) for s in model.noise_shapes(k, len(batch))]
        with torch.no_grad():
            log_w = model.log_weights(batch, k, noise)
        expected.append(torch.logsumexp(log_w, 0) - math.log(k))
    torch.testing.assert_close(est, torch.cat(expected), rtol=1e-13, atol=1e-12)


def test_minibatches_cover_every_example_once(grid_setup):
    model, _, x, exact = grid_setup
    xs = torch.cat([x, x.flip(0), x[:1]])  # 13 rows: batches of 5 leave a partial last batch
    est = log_likelihood_estimates(
        model, xs, 2000, torch.Generator().manual_seed(0), batch_size=5, progress=False
    )
    assert est.shape == (13,) and torch.isfinite(est).all()
    # each row's estimate is for its own x
    torch.testing.assert_close(est, torch.cat([exact, exact.flip(0), exact[:1]]), rtol=0, atol=0.2)


# ----------------------------------------------------------------------------------------------------------
# estimate_nll


def test_estimate_nll_summary_and_determinism():
    model = random_model(SMALL_2, seed=2)
    g = torch.Generator().manual_seed(4)
    intensities = torch.rand(9, 12, generator=g, dtype=F64)
    result, per_example = estimate_nll(model, intensities, k=30, seed=5, batch_size=4, progress=False)
    assert isinstance(result, NLLEstimate)
    assert per_example.shape == (9,) and per_example.dtype == F64
    assert result.k == 30 and result.n == 9
    assert result.nll == pytest.approx(-per_example.mean().item(), rel=1e-12)
    sd = math.sqrt(sum((v - per_example.mean().item()) ** 2 for v in per_example.tolist()) / 8)
    assert result.standard_error == pytest.approx(sd / 3, rel=1e-9)
    assert result.as_dict() == {"nll": result.nll, "standard_error": result.standard_error, "k": 30, "n": 9}

    # one generator, seeded once: binarisation first, then the importance samples
    gen = torch.Generator().manual_seed(5)
    x_binary = binarize(intensities, gen)
    manual = log_likelihood_estimates(model, x_binary, 30, gen, batch_size=4, progress=False)
    assert torch.equal(manual, per_example)

    again, per_again = estimate_nll(model, intensities, k=30, seed=5, batch_size=4, progress=False)
    assert again == result and torch.equal(per_again, per_example)
    other, _ = estimate_nll(model, intensities, k=30, seed=6, batch_size=4, progress=False)
    assert other.nll != result.nll


def test_estimate_nll_of_one_example_has_no_standard_error():
    model = random_model(SMALL_2, seed=2)
    result, _ = estimate_nll(model, torch.full((1, 12), 0.5, dtype=F64), k=5, seed=0, progress=False)
    assert result.n == 1 and math.isnan(result.standard_error)


@pytest.fixture(scope="module")
def mnist(mnist_data_dir):
    return load_dataset("mnist", mnist_data_dir, download="never")


def test_estimate_nll_of_an_initialised_paper_model_on_real_mnist(mnist):
    """At initialisation the decoder's output is ~ the training means: NLL ~ that of independent pixels."""
    means = training_pixel_means(mnist.train)
    model = IWAEModel(Architecture((50,), ((200, 200),), ((200, 200),)))
    initialise(model, means, seed=0)
    x = mnist.test[:40]
    result, per_example = estimate_nll(model, x, k=20, seed=123, progress=False)
    gen = torch.Generator().manual_seed(123)
    xb = binarize(x, gen)
    independent = (xb * torch.log(means) + (1 - xb) * torch.log1p(-means)).sum(1)  # log p(x) of the means
    assert torch.isfinite(per_example).all()
    assert 100 < result.nll < 400
    assert abs(result.nll + independent.mean().item()) < 0.25 * result.nll


# ----------------------------------------------------------------------------------------------------------
# active units


def encoder_mean(layer, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of a GaussianLayer from its raw weights."""
    for m in layer.body:
        if isinstance(m, torch.nn.Linear):
            h = torch.tanh(h @ m.weight.T + m.bias)
    return h @ layer.mean.weight.T + layer.mean.bias, torch.exp(
        h @ layer.log_std.weight.T + layer.log_std.bias
    )


def test_activity_statistics_are_variances_of_encoder_means():
    model = random_model(SMALL_2, seed=3, encoder_scale=1.0)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 12, generator=g, dtype=F64) < 0.5).to(F64)
    stats = activity_statistics(model, x, torch.Generator().manual_seed(7))
    assert [len(a) for a in stats] == [5, 3]
    mean1, std1 = encoder_mean(model.encoders[0], x)
    expected1 = ((mean1 - mean1.mean(0)) ** 2).mean(0)  # population variance across examples
    torch.testing.assert_close(stats[0], expected1, rtol=1e-12, atol=1e-14)
    # layer 2: the encoder mean given one sample h1 ~ q(h1 | x)
    gen = torch.Generator().manual_seed(7)
    h1 = mean1 + std1 * torch.randn(mean1.shape, generator=gen)
    mean2, _ = encoder_mean(model.encoders[1], h1)
    torch.testing.assert_close(stats[1], mean2.var(0, unbiased=False), rtol=1e-10, atol=1e-14)
    assert (stats[1] > 0).all()
    # the same generator seed gives the same statistics
    again = activity_statistics(model, x, torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(stats, again, strict=True))


def test_activity_statistics_of_the_paper_model_on_real_mnist(mnist):
    model = IWAEModel(PAPER_2)
    initialise(model, training_pixel_means(mnist.train), seed=0)
    gen = torch.Generator().manual_seed(123)
    x = binarize(mnist.train[:500], gen)
    stats = activity_statistics(model, x, gen)
    assert [len(a) for a in stats] == [100, 50]
    assert all(a.dtype == torch.float32 and (a >= 0).all() for a in stats)
    mean1 = model.encoders[0](x)[0].detach()
    torch.testing.assert_close(stats[0], mean1.var(0, unbiased=False), rtol=1e-5, atol=1e-7)
    counts = count_active(stats)
    assert counts == [int((a > ACTIVITY_THRESHOLD).sum()) for a in stats]
    assert 0 < counts[0] <= 100 and 0 <= counts[1] <= 50


def test_count_active_uses_a_strict_threshold():
    stats = [torch.tensor([0.0, 0.009, 0.01, 0.0100001, 2.0]), torch.tensor([0.5, 1e-5])]
    assert ACTIVITY_THRESHOLD == 0.01
    assert count_active(stats) == [2, 1]
    assert count_active(stats, threshold=1e-6) == [4, 2]
    assert count_active([torch.zeros(50)]) == [0]


def test_inclusive_threshold_counts_a_unit_exactly_at_it():
    """inclusive: A_u >= threshold, as the authors' code (numpy searchsorted); the default is the paper's >."""
    stats = [
        torch.tensor([0.0, 0.009, 0.01, 0.0100001, 2.0], dtype=F64),
        torch.tensor([0.5, 0.01], dtype=F64),
    ]
    assert count_active(stats, inclusive=True) == [3, 2]
    assert count_active(stats, inclusive=False) == [2, 1]
    masks = active_masks(stats, inclusive=True)
    assert masks[0].tolist() == [False, False, True, True, True] and masks[1].tolist() == [True, True]
    assert rule_text(0.01, True) == "A_u >= 0.01" and rule_text(0.01, False) == "A_u > 0.01"


def test_activity_entry_records_the_rule_and_gives_back_its_masks():
    stats = [torch.tensor([0.0, 0.01, 0.3], dtype=F64), torch.tensor([0.01, 0.02], dtype=F64)]
    entry = activity_entry(stats, 0.01, True, examples=500, samples=7)
    assert entry["counts"] == [2, 2] and entry["label"] == "2+2" and entry["rule"] == "A_u >= 0.01"
    assert entry["inclusive"] is True and entry["posterior_samples"] == 7 and entry["examples"] == 500
    assert entry["A_u"] == [a.tolist() for a in stats]
    assert [m.tolist() for m in entry_masks(entry)] == [[False, True, True], [True, True]]
    strict = activity_entry(stats, 0.01, False, examples=500)
    assert "posterior_samples" not in strict and strict["counts"] == [1, 1]
    legacy = {
        k: v for k, v in strict.items() if k not in ("inclusive", "rule")
    }  # recorded before `inclusive`
    assert [m.tolist() for m in entry_masks(legacy)] == [[False, False, True], [False, True]]
    assert recorded_matches(legacy, {"threshold": 0.01, "inclusive": False, "examples": 500})
    assert not recorded_matches(legacy, {"inclusive": True})
    assert recorded_matches(entry, {"posterior_samples": 7, "inclusive": True, "examples": None})
    assert not recorded_matches(entry, {"posterior_samples": 8})
    assert not recorded_matches(None, {}) and not recorded_matches({}, {})
    # float32 A_u (a float32 model's) read back from JSON give the masks that were counted
    just_under = [torch.tensor([0.01, 0.0100001, 0.5], dtype=torch.float32)]  # float32 0.01 is below 0.01
    recorded = activity_entry(just_under, 0.01, True, examples=3)
    assert [int(m.sum()) for m in entry_masks(recorded)] == recorded["counts"] == [2]


def test_expected_activity_statistics_average_the_conditional_mean_over_samples():
    """Layer 1: exactly the one-sample statistics (E[h1|x] is the encoder mean); layer 2: Var_x of the mean over S
    draws of h1 ~ q(h1|x) of mean_2(h1), drawn `chunk` samples at a time from the generator."""
    model = random_model(SMALL_2, seed=3, encoder_scale=1.0)
    x = (torch.rand(40, 12, generator=torch.Generator().manual_seed(0), dtype=F64) < 0.5).to(F64)
    stats = expected_activity_statistics(model, x, torch.Generator().manual_seed(7), samples=5, chunk=2)
    one = activity_statistics(model, x, torch.Generator().manual_seed(8))
    assert torch.equal(stats[0], one[0])
    mean1, std1 = encoder_mean(model.encoders[0], x)
    gen = torch.Generator().manual_seed(7)
    eps = torch.cat([torch.randn((s, 40, 5), generator=gen, dtype=F64) for s in (2, 2, 1)])
    mean2, _ = encoder_mean(model.encoders[1], mean1 + std1 * eps)
    torch.testing.assert_close(stats[1], mean2.mean(0).var(0, unbiased=False), rtol=1e-10, atol=1e-14)
    assert not torch.allclose(stats[1], one[1], rtol=0.05)


@pytest.fixture(scope="module")
def paper_2_on_mnist(mnist):
    """The paper's 2-layer model initialised on real MNIST and 500 binarised training images (seed 123)."""
    model = IWAEModel(PAPER_2)
    initialise(model, training_pixel_means(mnist.train), seed=0)
    return model, binarize(mnist.train[:500], torch.Generator().manual_seed(123))


def test_expected_activity_statistics_converge_on_real_mnist(paper_2_on_mnist):
    """With S = 1000 (active_units.posterior_samples) two noise seeds give nearly the same layer-2 A_u, where one
    sample of h1 (the authors' estimate) gives A_u that differ more and are inflated by q's noise."""
    model, x = paper_2_on_mnist

    def layer2(samples: int, seed: int) -> torch.Tensor:
        return expected_activity_statistics(model, x, torch.Generator().manual_seed(seed), samples)[1]

    def relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs() / b

    s1, s1_other = layer2(1, 1), layer2(1, 2)
    s_big, s_big_other = layer2(1000, 1), layer2(1000, 2)
    code = activity_statistics(model, x, torch.Generator().manual_seed(1))[1]
    assert relative(s_big, s_big_other).median() < 0.03 and relative(s_big, s_big_other).max() < 0.1
    assert relative(s1, s1_other).median() > 2 * relative(s_big, s_big_other).median()
    assert (s1 > 2 * s_big).all() and (code > 2 * s_big).all()  # the one-sample A_u adds q's variance
    first = [expected_activity_statistics(model, x, torch.Generator().manual_seed(s), 3)[0] for s in (1, 2)]
    assert torch.equal(first[0], first[1])  # layer 1 needs no sampling


def test_units_label():
    assert units_label([16, 5]) == "16+5"
    assert units_label([19]) == "19"
    assert units_label([26, 7, 3]) == "26+7+3"


def test_activity_histogram_is_written(tmp_path):
    stats = [torch.tensor([1e-5, 0.02, 0.5, 3.0]), torch.tensor([0.0, 0.2])]
    path = tmp_path / "sub" / "activity.png"
    path.parent.mkdir()
    plot_activity_histogram(stats, ACTIVITY_THRESHOLD, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_estimate_without_a_bar_says_how_long_it_will_take(grid_setup, caplog):
    model, _, x, _ = grid_setup  # 6 examples: 3 minibatches of 2
    with caplog.at_level(logging.INFO, logger="iwae_cli.core.estimators"):
        log_likelihood_estimates(model, x, 100, torch.Generator().manual_seed(3), batch_size=2, progress=False)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("estimating L_100 on 6 examples in 3 minibatches: about ")
    assert line.endswith(" s at the first one's pace")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="iwae_cli.core.estimators"):  # one minibatch: nothing to wait for
        log_likelihood_estimates(model, x, 100, torch.Generator().manual_seed(3), batch_size=6, progress=False)
    assert not caplog.records
