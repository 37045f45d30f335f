"""`profile=<name>` on the run commands (cli/profiles.py): the overrides a table command's job is given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from iwae_cli.cli.profiles import with_profile
from iwae_cli.errors import ConfigError
from iwae_cli.specs.profiles import profile_names, schedule_override
from iwae_cli.specs.tables import table_spec
from iwae_cli.tasks.tables.sweep import identity_overrides, job_overrides

CELL = ["dataset=mnist", "layers='1'", "model=iwae", "k=50", "seed=0"]
# Where a table's job runs and how it reports: none of it is the run's model or its evaluation
WHERE = ("progress", "device", "threads", "output_root", "download", "data_dir", "group")


@pytest.fixture
def packaged_configs() -> Iterator[None]:
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        yield
    HydraConfig.instance().cfg = None


def resolved(name: str, overrides: list[str]) -> dict[str, Any]:
    """`name` composed with `overrides` and resolved as a job sees it (run_name included)."""
    cfg = compose(name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "job-dir"
    HydraConfig.instance().set_config(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    del container["hydra"]
    return {key: value for key, value in container.items() if key not in WHERE}


@pytest.mark.parametrize("profile", profile_names())
def test_train_with_a_profile_is_the_run_table1_trains_and_evaluates(packaged_configs, profile: str) -> None:
    table = compose("table1", overrides=[f"profile={profile}"])
    spec = table_spec(table)
    as_table1 = [*CELL, schedule_override(spec.profile), *identity_overrides(table), *job_overrides(table, spec, 1)]
    alone = [*with_profile("train", [f"profile={profile}", *CELL]), "evaluate=true"]
    assert resolved("train", alone) == resolved("train", as_table1)


def test_the_profile_goes_where_it_was_written() -> None:
    args = ["k=5", "profile=medium", "--cfg", "job"]
    assert with_profile("train", args) == [
        "k=5", "schedule=paper4", "eval.k=5000", "eval.examples=null", "eval.prune_inactive=false", "--cfg", "job"
    ]


def test_what_the_user_writes_wins_over_the_profile() -> None:
    args = with_profile("train", ["profile=smoke", "schedule=quick", "++eval.k=100"])
    assert args == ["eval.examples=100", "eval.prune_inactive=true", "schedule=quick", "++eval.k=100"]


@pytest.mark.parametrize(("command", "expected"), [
    ("switch-objective", ["eval.k=50", "eval.examples=100", "eval.prune_inactive=false"]),  # as table2's jobs
    ("eval-nll", ["eval.k=50", "eval.examples=100", "eval.prune_inactive=false"]),
    ("active-units", []),  # the tables count with the shared settings, which no profile changes
])
def test_each_run_command_is_given_what_a_table_gives_its_jobs(command: str, expected: list[str]) -> None:
    assert with_profile(command, ["profile=smoke", "run=somewhere"]) == [*expected, "run=somewhere"]


@pytest.mark.parametrize("command", ["table1", "table2", "table-extra"])
def test_the_table_commands_read_their_profile_group_themselves(command: str) -> None:
    assert with_profile(command, ["-m", "profile=quick,medium"]) == ["-m", "profile=quick,medium"]


def test_an_unknown_profile_is_refused_with_the_profiles() -> None:
    listed = "profile=fats is not a profile: choose one of fast, medium, paper, quick, smoke"
    with pytest.raises(ConfigError, match=listed):
        with_profile("train", ["profile=fats"])


@pytest.mark.parametrize("value", ["quick,medium", "choice(quick,medium)", "glob(*)"])
def test_a_sweep_over_profiles_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="profile takes one name per command"):
        with_profile("train", ["-m", f"profile={value}"])


@pytest.mark.parametrize("command", ["frontier", "grad-snr", "bench"])
def test_commands_a_profile_means_nothing_to_refuse_it(command: str) -> None:
    with pytest.raises(ConfigError, match=f"iwae {command} takes no profile="):
        with_profile(command, ["profile=medium"])
