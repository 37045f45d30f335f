"""switch-objective's second stage (tasks/switch.py): the first run's model settings, this command's objective
and k, and every other setting from this command, with no list of keys to keep up to date."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from iwae_cli.errors import ConfigError
from iwae_cli.specs.run import run_spec
from iwae_cli.tasks.switch import second_stage, second_stage_dir
from iwae_cli.tasks.tables.table2 import child_run

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


@pytest.mark.parametrize("given", ["+schedule.batch_sise=3", "+arch.latent_unit=[5]"])
def test_a_model_setting_the_first_run_has_not_is_refused(first_run: Path, given: str) -> None:
    # merged into the stored config it would be ignored: the second stage would train something not asked for
    here = composed("switch_objective", "model=iwae", given, f"output_root={first_run.parents[1]}")
    key = given[1:].partition("=")[0]
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} is not a setting of the first run's"):
        second_stage(here, first_run)


def test_a_switch_setting_of_this_command_is_no_setting_of_the_second_stage(first_run: Path) -> None:
    here = composed("switch_objective", "model=iwae", "k=5", "same_objective=true", f"output_root={first_run.parents[1]}")
    assert "same_objective" not in second_stage(here, first_run) and "run" not in second_stage(here, first_run)


def test_the_second_stage_lies_beside_the_first_and_a_switched_run_beside_it(tmp_path: Path) -> None:
    first = tmp_path / "runs" / "mnist" / "L1-vae-k1" / "smoke-text-paper-sum-seed0"
    second = second_stage_dir(first, "iwae-k50")
    assert second == first.with_name("smoke-text-paper-sum-seed0-then-iwae-k50")
    assert second_stage_dir(second, "vae-k1") == first.with_name("smoke-text-paper-sum-seed0-then-iwae-k50-then-vae-k1")
    assert child_run(first, ("iwae", 50)) == second  # where table2 reads it


def test_a_second_stage_that_older_versions_made_inside_its_first_run_is_found_there(tmp_path: Path) -> None:
    first = tmp_path / "runs" / "mnist" / "L1-vae-k1" / "smoke-text-paper-sum-seed0"
    (first / "switch-iwae-k50").mkdir(parents=True)
    assert second_stage_dir(first, "iwae-k50") == first / "switch-iwae-k50"
    assert child_run(first, ("iwae", 50)) == first / "switch-iwae-k50"
    assert second_stage_dir(first, "iwae-k5") == first.with_name(f"{first.name}-then-iwae-k5")


def test_switching_to_the_same_objective_needs_saying_so_and_says_which_run(iwae_cli, smoke_run: Path) -> None:
    """The smoke run is IWAE k=5: switching it to IWAE k=5 only trains it further (the control for the extra
    passes), refused unless same_objective=true; the run it continues is named first, run= given or not."""
    refused = iwae_cli("switch-objective", f"run={smoke_run}", "model=iwae", "k=5", ok=False)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1 and "same_objective=true" in lines[0], refused.stderr
    siblings = sorted(p.name for p in smoke_run.parent.iterdir())
    assert siblings == [smoke_run.name] and not any(p.is_dir() for p in smoke_run.iterdir())

    done = iwae_cli("switch-objective", "model=iwae", "k=5", "same_objective=true", "progress=false")
    beside = smoke_run.with_name(f"{smoke_run.name}-then-iwae-k5")
    assert done.stdout.splitlines()[0] == f"switch-objective: continuing {smoke_run} (iwae-k5) with iwae-k5 in {beside}"
    assert json.loads((beside / "status.json").read_text())["state"] == "done"
    assert not any(p.is_dir() for p in smoke_run.iterdir())  # nothing nested in the first run

    # a second stage where older versions put it, inside its first run: resumed there, not trained again beside
    nested = smoke_run / "switch-iwae-k5"
    beside.rename(nested)
    again = iwae_cli("switch-objective", f"run={smoke_run}", "model=iwae", "k=5", "same_objective=true")
    assert f"with iwae-k5 in {nested}" in again.stdout.splitlines()[0]
    assert not beside.exists() and json.loads((nested / "status.json").read_text())["state"] == "done"
