"""The objective registry: one declaration per objective, its conf/model YAML, and what is derived from it."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
from omegaconf import OmegaConf

from iwae_cli.core.model import Architecture
from iwae_cli.core.objective_registry import LOG_WEIGHT_BOUNDS, OBJECTIVES, bound_objective, objective
from iwae_cli.core.objectives import build_log_weight_bound, build_objective
from iwae_cli.errors import ConfigError
from iwae_cli.specs.run import objective_spec
from tests.helpers.tiny_models import binary_x, random_model

ARCH = Architecture(latent_units=(3,), encoder_hidden=((8,),), decoder_hidden=((8,),), x_dim=10)
K = 10  # divisible by the declared groups (5)


def model_yamls() -> dict[str, dict]:
    """conf/model/<stem>.yaml as shipped (the config package iwae_cli.conf), by file stem."""
    folder = files("iwae_cli.conf").joinpath("model")
    return {
        p.name.removesuffix(".yaml"): OmegaConf.to_container(OmegaConf.create(p.read_text()))
        for p in folder.iterdir()
        if p.name.endswith(".yaml")
    }


def make_noise(model, k: int, batch: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64) for s in model.noise_shapes(k, batch)]


def parameters(cfg: dict) -> dict:
    return {key: value for key, value in cfg.items() if key != "name"}


def test_every_model_yaml_declares_a_registered_objective_with_exactly_its_parameters_and_defaults() -> None:
    yamls = model_yamls()
    assert set(yamls) == set(OBJECTIVES)  # and every registered objective has its YAML
    for stem, cfg in yamls.items():
        assert cfg["name"] == stem
        declared = OBJECTIVES[stem].parameters
        assert parameters(cfg) == declared, stem
        assert {p: type(v) for p, v in parameters(cfg).items()} == {p: type(v) for p, v in declared.items()}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_each_yaml_builds_its_objective_with_its_values(name: str) -> None:
    cfg = OmegaConf.create(model_yamls()[name])
    model = random_model(ARCH, seed=1, scale=0.5)
    x = binary_x(3, ARCH.x_dim)
    noise = make_noise(model, K, 3, seed=2)
    got = objective_spec(cfg, K, "sum").build()(model, x, K, noise)
    expected = OBJECTIVES[name].objective(model, x, K, noise, **parameters(cfg))
    assert torch.equal(got.bound, expected.bound) and torch.equal(got.loss, expected.loss)
    assert (got.encoder_loss is None) == (expected.encoder_loss is None)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_the_compiled_steps_bound_is_derived_from_the_same_declaration(name: str) -> None:
    """A bound-of-log-weights objective's Estimate is (bound(log w), -sum bound); the others have no bound."""
    cfg = OmegaConf.create(model_yamls()[name])
    bound = objective_spec(cfg, K, "sum").log_weight_bound()
    assert (bound is not None) == (name in LOG_WEIGHT_BOUNDS)
    if bound is None:
        return
    model = random_model(ARCH, seed=3, scale=0.5)
    x = binary_x(4, ARCH.x_dim)
    noise = make_noise(model, K, 4, seed=4)
    estimate = objective_spec(cfg, K, "sum").build()(model, x, K, noise)
    value = bound(model.log_weights(x, K, noise))
    assert estimate.encoder_loss is None
    assert torch.equal(estimate.bound, value) and torch.equal(estimate.loss, -value.sum())


def test_only_the_estimators_with_stop_gradients_or_encoder_losses_lack_a_log_weight_bound() -> None:
    assert {"vae", "iwae", "miwae", "ciwae", "vr"} <= LOG_WEIGHT_BOUNDS.keys()
    assert not {"stl", "dreg", "piwae", "rws"} & LOG_WEIGHT_BOUNDS.keys()


@pytest.fixture
def scratch_registry():
    """The registry as it is, restored after the test (which declares objectives of its own)."""
    saved = dict(OBJECTIVES), dict(LOG_WEIGHT_BOUNDS)
    yield
    for live, old in zip((OBJECTIVES, LOG_WEIGHT_BOUNDS), saved, strict=True):
        live.clear()
        live.update(old)


def test_one_declaration_registers_an_objective_its_parameters_its_check_and_compile_eligibility(
    scratch_registry,
) -> None:
    checked = []

    def positive(k: int, scale: float) -> None:
        checked.append((k, scale))
        if scale <= 0:
            raise ConfigError(f"model.scale must be positive, got {scale}")

    @bound_objective("scaled", check=positive)
    def scaled(log_w: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return scale * log_w.mean(0)

    @objective("plain")
    def plain(model, x, k, noise=None, *, power: int = 1):
        raise AssertionError("not called here")

    assert OBJECTIVES["scaled"].parameters == {"scale": 2.0}
    assert OBJECTIVES["plain"].parameters == {"power": 1}
    assert LOG_WEIGHT_BOUNDS["scaled"] is scaled and "plain" not in LOG_WEIGHT_BOUNDS
    log_w = torch.randn(3, 2, dtype=torch.float64)
    bound = build_log_weight_bound("scaled", {"scale": 3}, 7)  # an int, taken as 3.0
    torch.testing.assert_close(bound(log_w), 3 * log_w.mean(0))
    assert checked == [(7, 3.0)] and isinstance(checked[0][1], float)
    assert build_log_weight_bound("plain", {}, 7) is None
    with pytest.raises(ConfigError, match="model.scale must be positive, got -1.0"):
        build_objective("scaled", {"scale": -1}, 7)
    with pytest.raises(
        ConfigError, match=r"model=plain has no parameter model.scale \(it takes: model.power\)"
    ):
        build_objective("plain", {"scale": 1.0}, 7)
    with pytest.raises(ValueError, match="declared twice"):
        bound_objective("scaled")(scaled)
    model = random_model(ARCH, seed=5)
    x = binary_x(2, ARCH.x_dim)
    estimate = build_objective("scaled", {}, 7)(model, x, 7, make_noise(model, 7, 2, 6))
    torch.testing.assert_close(
        estimate.loss, -2.0 * model.log_weights(x, 7, make_noise(model, 7, 2, 6)).mean(0).sum()
    )


def test_an_unknown_model_key_is_one_error_line_from_the_cli(iwae_cli) -> None:
    result = iwae_cli("train", "schedule=smoke", "progress=false", "+model.alpha=0.5", ok=False)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: +model.alpha=0.5: model.alpha is not a setting of iwae train; model's settings are name "
        "(+ adds a key only under tags)"
    ], result.stderr
