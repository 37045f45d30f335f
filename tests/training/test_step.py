"""The training step: the compiled step gives the plain step's numbers, and `compile=` behaves as documented."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import iwae_cli.training.compile as compile_module
import iwae_cli.training.trainer as train_module
from iwae_cli.core.model import Architecture, IWAEModel, initialise
from iwae_cli.core.objective_registry import LOG_WEIGHT_BOUNDS, OBJECTIVES
from iwae_cli.core.optim import OptimSpec, build_optimizer
from iwae_cli.errors import NumericalError
from iwae_cli.specs.run import objective_spec
from iwae_cli.training.step import CompiledStep, backward, train_step

SMOKE = ("schedule=smoke", "progress=false")
TINY = Architecture(latent_units=(3, 2), encoder_hidden=((8,), (5,)), decoder_hidden=((8,), (5,)), x_dim=12)
# torch.compile on CPU builds C++; without a compiler, compile=auto trains with the plain step (tested below).
needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="no C++ compiler for torch.compile"
)
OPTIMS = {
    "paper": OptimSpec("torch", (0.9, 0.999), 1e-4),
    "original_code": OptimSpec("original_code", (0.99, 0.999), 1e-4),
}


def tiny_model(seed: int = 0) -> IWAEModel:
    model = IWAEModel(TINY)
    initialise(model, torch.full((TINY.x_dim,), 0.3), seed)
    return model


def load_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


@needs_compiler
@pytest.mark.parametrize(
    "objective, optim",
    # every objective the compiled step can train, with its declared defaults (k = 10: groups = 5 divides it)
    [({"name": name}, "paper") for name in sorted(LOG_WEIGHT_BOUNDS)]
    + [
        ({"name": "vae"}, "original_code"),
        ({"name": "ciwae", "beta": 0.3}, "paper"),  # a parameter other than its default
        ({"name": "iwae", "reduction": "mean"}, "paper"),
    ],
)
def test_the_compiled_step_gives_the_plain_steps_numbers(objective: dict, optim: str) -> None:
    objective = dict(objective)
    reduction = objective.pop("reduction", "sum")
    k, batch = 10, 6
    model_config = OmegaConf.create(objective)
    plain_model = tiny_model()
    compiled_model = copy.deepcopy(plain_model)
    plain_opt = build_optimizer(plain_model.parameters(), OPTIMS[optim], 1e-2)
    compiled_opt = build_optimizer(compiled_model.parameters(), OPTIMS[optim], 1e-2)
    step = CompiledStep(compiled_model, compiled_opt, objective_spec(model_config, k, "sum").log_weight_bound(), k, batch, reduction)
    plain_gen, compiled_gen = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    data = torch.rand(batch, TINY.x_dim, generator=torch.Generator().manual_seed(9))
    for _ in range(4):
        plain_bound = train_step(plain_model, plain_opt, objective_spec(model_config, k, reduction).build(), data, k, plain_gen)
        compiled_bound = step(data, compiled_gen)
        torch.testing.assert_close(compiled_bound, plain_bound, rtol=1e-5, atol=1e-5)
    assert torch.equal(plain_gen.get_state(), compiled_gen.get_state())  # the same random draws
    for (name, p), q in zip(plain_model.named_parameters(), compiled_model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(plain_model.decoders[0].logits.weight, tiny_model().decoders[0].logits.weight)
    plain_state, compiled_state = plain_opt.state_dict()["state"], compiled_opt.state_dict()["state"]
    assert plain_state.keys() == compiled_state.keys() and len(plain_state) == len(
        list(plain_model.parameters())
    )
    for i in plain_state:
        torch.testing.assert_close(compiled_state[i], plain_state[i], rtol=1e-5, atol=1e-6)


@needs_compiler
def test_the_compiled_step_refuses_a_non_finite_loss_before_moving() -> None:
    model = tiny_model()
    optimizer = build_optimizer(model.parameters(), OPTIMS["paper"], 1e-2)
    step = CompiledStep(model, optimizer, objective_spec(OmegaConf.create({"name": "iwae"}), 3, "sum").log_weight_bound(), 3, 5)
    with torch.no_grad():
        model.decoders[0].logits.bias[0] = float("nan")
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NumericalError, match="non-finite"):
        step(torch.rand(5, TINY.x_dim), torch.Generator().manual_seed(0))
    assert not optimizer.state  # Adam never stepped
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], equal_nan=True, rtol=0, atol=0)


# ------------------------------------------------------------------------------------ compile= in `iwae train`


@needs_compiler
def test_compile_true_trains_to_the_plain_runs_numbers_and_repeats_exactly(
    iwae_cli, smoke_run_template: Path, tmp_path: Path
) -> None:
    """The session's smoke run (plain: compile=auto does not compile 40 steps) against compile=true, twice."""
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        iwae_cli("train", *SMOKE, "k=5", "compile=true", f"hydra.run.dir={run}")
    compiled, again = (load_checkpoint(run) for run in runs)
    plain = load_checkpoint(smoke_run_template)
    assert torch.equal(compiled["generator"], plain["generator"])
    for name, value in plain["model"].items():
        assert torch.equal(compiled["model"][name], again["model"][name]), name  # seeded: bit-identical
        # (a few of Adam's near-zero-gradient coordinates drift by float rounding over 40 steps: on the
        # summed loss's scale eps = 1e-4 damps them less than it did the mean's, so they drift further)
        torch.testing.assert_close(compiled["model"][name], value, rtol=1e-4, atol=3e-4)


def test_compile_auto_compiles_long_runs_and_falls_back_when_compiling_fails(
    iwae_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []

    def failing_compiled_step(*args, **kwargs):
        attempts.append(args)
        raise RuntimeError("no C++ compiler here\nsecond line")

    monkeypatch.setattr(compile_module, "COMPILE_MIN_STEPS", 40)  # the smoke schedule's length
    monkeypatch.setattr(train_module, "CompiledStep", failing_compiled_step)
    result = iwae_cli("train", *SMOKE)
    assert len(attempts) == 1
    output = result.stdout + result.stderr
    assert "torch.compile failed (no C++ compiler here); training with the plain step" in output
    assert load_checkpoint(iwae_cli.run_dir())["position"]["stage"] == 2

    result = iwae_cli("train", *SMOKE, "seed=1", "compile=true", ok=False)
    assert result.exit_code != 0
    assert "compile=true but torch.compile failed here: no C++ compiler here" in result.stderr


def test_compile_auto_leaves_short_runs_plain(iwae_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile_module, "COMPILE_MIN_STEPS", 41)
    monkeypatch.setattr(train_module, "CompiledStep", lambda *a, **kw: pytest.fail("compiled a short run"))
    iwae_cli("train", *SMOKE)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("compile=sometimes",), "compile must be auto, true or false, got compile=sometimes"),
        (
            ("compile=true", "model=dreg"),
            "compile=true needs an objective that is a bound of the log weights",
        ),
    ],
)
def test_bad_compile_settings_get_one_line(iwae_cli, overrides: tuple[str, ...], message: str) -> None:
    result = iwae_cli("train", *SMOKE, *overrides, ok=False)
    assert result.exit_code != 0
    assert message in result.stderr


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_the_summed_loss_has_batch_size_times_the_mean_losss_gradient(name: str) -> None:
    """loss_reduction=sum (the authors' scale, the default) vs mean: exactly B times the gradient for a batch
    of 16 (a power of two scales without rounding), and to float64 rounding for 20."""
    config = OmegaConf.create({"name": name})  # the declared defaults: groups = 5 divides k = 10
    k = 10
    for batch in (16, 20):
        model = tiny_model().double()
        x = (torch.rand(batch, TINY.x_dim, generator=torch.Generator().manual_seed(3)) < 0.4).double()
        noise = [
            torch.randn(s, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
            for s in model.noise_shapes(k, batch)
        ]
        grads = {}
        for reduction in ("sum", "mean"):
            model.zero_grad(set_to_none=True)
            backward(model, objective_spec(config, k, reduction).build()(model, x, k, noise))
            grads[reduction] = [p.grad.clone() for p in model.parameters()]
        for g_sum, g_mean in zip(grads["sum"], grads["mean"], strict=True):
            if batch == 16:
                assert torch.equal(g_sum, 16 * g_mean)
            else:
                torch.testing.assert_close(g_sum, batch * g_mean, rtol=1e-12, atol=1e-12)
        assert any(g.abs().max() > 0 for g in grads["sum"])
