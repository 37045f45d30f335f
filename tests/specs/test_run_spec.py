"""A run's parts are built once from the composed config (specs.run.run_spec); training sees only them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from iwae_cli.core.optim import OptimSpec
from iwae_cli.errors import ConfigError
from iwae_cli.pipeline.lifecycle import RunPlan, carry_out
from iwae_cli.specs.run import run_spec
from iwae_cli.training.spec import ObjectiveSpec

SMOKE = ("schedule=smoke", "progress=false", "compile=false", "device=cpu")
TINY = ("schedule.train_examples=40", "schedule.passes=[1]", "schedule.learning_rates=[1e-3]")
CODE_RATES = "schedule.learning_rates=[7.196856730011521e-4,1.389495494373138e-4]"


@pytest.fixture(autouse=True)
def no_leftover_hydra_config() -> Iterator[None]:
    yield
    HydraConfig.instance().cfg = None  # later tests start, as a fresh process does, without one


def train_config(*overrides: str) -> DictConfig:
    """`iwae train`'s config as its task receives it: composed, HydraConfig set, the hydra node removed."""
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*SMOKE, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # run_name reads ${hydra:runtime.choices.layers}
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


def test_protocol_code_gives_rounded_rates_a_holdout_and_the_authors_adam(output_root: Path) -> None:
    spec = run_spec(train_config("protocol=code", CODE_RATES), "(resume hint)")
    assert spec.schedule.learning_rates == (7.2e-4, 1.4e-4)
    assert (spec.schedule.batch_size, spec.schedule.passes, spec.schedule.train_examples) == (20, (1, 1), 400)
    assert spec.data.holdout == 400 and spec.data.name == "mnist" and spec.data.download == "auto"
    assert spec.optim == OptimSpec("original_code", (0.99, 0.999), 1e-4)
    assert spec.model.same_seed_init is True
    assert spec.summary["protocol"] == "code" and spec.summary["optim"] == "original_code"


def test_protocol_text_gives_the_rates_as_written_no_holdout_and_torch_adam(output_root: Path) -> None:
    spec = run_spec(train_config("protocol=text", CODE_RATES), "(resume hint)")
    assert spec.schedule.learning_rates == (7.196856730011521e-4, 1.389495494373138e-4)
    assert spec.data.holdout == 0
    assert spec.optim == OptimSpec("torch", (0.9, 0.999), 1e-4)
    assert spec.model.same_seed_init is False


def test_the_spec_holds_the_objective_the_settings_and_what_the_run_records(output_root: Path) -> None:
    spec = run_spec(train_config("model=miwae", "k=10", "seed=3"), "(resume hint)")
    assert spec.objective == ObjectiveSpec("miwae", {"groups": 5}, 10, "sum")
    assert spec.model.arch.latent_units == (50,) and spec.model.arch.x_dim == 784 and spec.model.seed == 3
    run = spec.settings
    assert (run.seed, run.device, run.threads, run.compile) == (3, torch.device("cpu"), None, "false")
    assert (run.progress, run.checkpoint_minutes, run.validation_seed) == (False, 5.0, 123)
    # the fingerprint is the typed identity (specs/identity.py), every objective parameter in it and the name
    assert spec.fingerprint["version"] == 2 and spec.fingerprint["parent"] is None
    assert spec.fingerprint["objective"] == {"name": "miwae", "params": {"groups": 5}, "k": 10}
    assert spec.fingerprint["schedule"]["learning_rates"] == [1e-3, 5e-4]  # as trained (protocol=text: as written)
    written = OmegaConf.create(spec.config_yaml)
    assert "${" not in spec.config_yaml and written.k == 10
    assert written.run_name == "mnist/L1-miwae-g5-k10/smoke-text-paper-sum-seed3"
    assert spec.summary["objective"] == "miwae" and spec.summary["k"] == 10


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("k=7", "model=miwae"), "model.groups (M=5) must divide k=7"),
        (("protocol=code", "schedule.learning_rates=[1e-3,1e-6]"), "rounds rates below 5e-6 to zero"),
        (("optim.eps=0",), "eps > 0"),
        (("arch.latent_units=[0]",), "arch sizes must be positive"),
    ],
)
def test_settings_once_found_while_training_are_refused_by_the_spec(
    output_root: Path, overrides: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_spec(train_config(*overrides), "(resume hint)")


def test_two_specs_train_in_one_process_without_their_configs(
    output_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cells (different objective, k, seed and protocol) trained one after the other in this process, then
    the first again: it repeats bit for bit (nothing of one run leaks into the next), and no DictConfig is read
    once the specs are built."""
    specs = {
        "a": run_spec(train_config(*TINY, "k=3"), "(resume hint)"),
        "b": run_spec(train_config(*TINY, "model=vae", "k=1", "seed=1", "protocol=code"), "(resume hint)"),
    }

    def refuse(*args, **kwargs):
        raise AssertionError("a DictConfig was read below the spec")

    for method in ("__getattr__", "__getitem__", "get", "items", "__iter__"):
        monkeypatch.setattr(DictConfig, method, refuse)
    cells = {"a": "a", "b": "b", "a-again": "a"}  # run directory: spec
    for run_dir, name in cells.items():
        assert carry_out([RunPlan(specs[name], tmp_path / run_dir)]) == {}
    monkeypatch.undo()

    states = {d: torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in cells}
    for name in ("a", "b"):
        assert states[name]["config"] == specs[name].fingerprint and states[name]["position"]["passes_done"] == 1
        assert json.loads((tmp_path / name / "status.json").read_text())["state"] == "done"
        assert (tmp_path / name / "config.yaml").read_text() == specs[name].config_yaml
    assert all(torch.equal(states["a"]["model"][key], v) for key, v in states["a-again"]["model"].items())
    assert torch.equal(states["a"]["generator"], states["a-again"]["generator"])
    assert (
        type(states["b"]["optimizer"]["state"][0]["v"]) is torch.Tensor
    )  # the authors' Adam (protocol=code)
