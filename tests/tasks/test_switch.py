"""switch-objective's second stage (tasks/switch.py): the first run's model settings, this command's objective
and k, and every other setting from this command, with no list of keys to keep up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from iwae_cli.specs.run import run_spec
from iwae_cli.tasks.switch import second_stage

FIRST = ("schedule=smoke", "model=vae", "k=1", "seed=3", "layers='2'", "protocol=code", "threads=1",
         "device=cpu", "compile=false", "eval.k=10", "logger=none")


@pytest.fixture(autouse=True)
def no_leftover_hydra_config() -> Iterator[None]:
    yield
    HydraConfig.instance().cfg = None


def composed(config: str, *overrides: str) -> DictConfig:
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        cfg = compose(config, overrides=["output_root=/tmp/iwae-out", *overrides], return_hydra_config=True)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def first_run(tmp_path: Path) -> Path:
    """A first run's directory as training leaves its config.yaml (resolved)."""
    run_dir = tmp_path / "out" / "runs" / "first"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(composed("train", *FIRST), resolve=True))
    return run_dir


def test_where_it_runs_and_how_it_trains_come_from_this_command(first_run: Path) -> None:
    here = composed("switch_objective", "model=iwae", "k=5", "compile=true", "threads=2", "logger=tensorboard",
                    "checkpoint_minutes=1", "eval.k=20", "device=cpu", f"output_root={first_run.parents[1]}")
    stage = second_stage(here, first_run)
    assert (stage.compile, stage.threads, stage.checkpoint_minutes, stage.eval.k) == (True, 2, 1, 20)
    assert "tensorboard" in stage.logger and stage.output_root == str(first_run.parents[1])
    # the model it continues: the first run's, with this command's objective and k, on the switch stages
    assert (stage.seed, list(stage.arch.latent_units), stage.protocol.name) == (3, [100, 50], "code")
    assert (stage.model.name, stage.k) == ("iwae", 5)
    assert list(stage.schedule.passes) == [1] and stage.schedule.name == "smoke-switch"
    assert stage.parent == "first"  # relative to <output_root>/runs
    spec = run_spec(stage, "(hint)")
    assert spec.settings.compile == "true" and spec.settings.threads == 2 and spec.parent == "first"
    assert spec.tracking.enabled


def test_a_model_setting_given_here_changes_only_that_setting(first_run: Path) -> None:
    here = composed("switch_objective", "model=vr", "+schedule.switch_passes=[3]", "+seed=9",
                    f"output_root={first_run.parents[1]}")
    stage = second_stage(here, first_run)
    assert list(stage.schedule.passes) == [3] and list(stage.schedule.learning_rates) == [1e-4]
    assert stage.schedule.batch_size == 20 and stage.seed == 9 and stage.model.alpha == 0.5
    assert stage.protocol.name == "code" and stage.loss_reduction == "sum"
