"""Every command config composes and resolves with every option of every config group it uses.

The configs and groups are discovered from the installed package `iwae_cli.conf`, so a new config, group or
option is tested without editing this file. Each (config, group, option) is its own test.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.abc import Traversable
from importlib.resources import files
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

CONF = files("iwae_cli.conf")


def yaml_names(folder: Traversable) -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def defaults_of(name: str) -> list[Any]:
    return yaml.safe_load(CONF.joinpath(f"{name}.yaml").read_text()).get("defaults", [])


GROUPS = {p.name: yaml_names(p) for p in CONF.iterdir() if p.is_dir() and yaml_names(p)}
TOP_LEVEL = yaml_names(CONF)
# Shared configs (common, stdout_only): named as a plain entry in another top-level config's defaults.
SHARED = {entry for name in TOP_LEVEL for entry in defaults_of(name) if entry in TOP_LEVEL}
COMMANDS = [name for name in TOP_LEVEL if name not in SHARED]


def groups_used(name: str) -> list[str]:
    """The config groups in `name`'s defaults list, or in those of the shared configs it includes."""
    used = []
    for entry in defaults_of(name):
        if isinstance(entry, str) and entry in SHARED:
            used += groups_used(entry)
        elif isinstance(entry, dict):
            (key,) = entry
            group = key.removeprefix("override ").removeprefix("optional ").lstrip("/").split("@")[0]
            used += [group] if group in GROUPS else []
    return list(dict.fromkeys(used))


CASES = [
    pytest.param(name, group, option, id=f"{name}-{group}={option}")
    for name in COMMANDS
    for group in groups_used(name)
    for option in GROUPS[group]
]


@pytest.fixture(scope="module", autouse=True)
def packaged_configs() -> Iterator[None]:
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        yield


@pytest.fixture(autouse=True)
def no_leftover_hydra_config() -> Iterator[None]:
    yield
    HydraConfig.instance().cfg = None  # later tests start, as a fresh process does, without one


def composed(name: str, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """`name` composed as a job sees it (hydra node included), with every interpolation resolved.

    The values Hydra fills in only when a job starts (its number, id and output directory) are set first,
    as a launcher would, so that interpolations of them, e.g. the log file's name, resolve too.
    """
    cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job.num, cfg.hydra.job.id = 0, "0"
        cfg.hydra.runtime.output_dir = "job-dir"
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} interpolations, e.g. run_name's layers choice
    return OmegaConf.to_container(cfg, resolve=True)  # an interpolation of a missing (???) value fails too


def test_discovery_finds_the_commands_and_groups() -> None:
    assert "train" in COMMANDS and "common" in SHARED
    assert {"dataset", "layers", "model"} <= set(groups_used("train"))


def test_every_group_is_used_by_a_command() -> None:
    used = {group for name in COMMANDS for group in groups_used(name)}
    assert used == set(GROUPS), sorted(set(GROUPS) - used)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_config_composes_with_its_defaults(name: str) -> None:
    hydra = composed(name)["hydra"]
    assert hydra["help"]["header"].startswith(f"{hydra['help']['app_name']}:")  # `iwae <command> --help`
    assert hydra["job"]["name"] == name


@pytest.mark.parametrize(("name", "group", "option"), CASES)
def test_each_group_option_composes(name: str, group: str, option: str) -> None:
    # Quoted, as the CLI quotes layers=1: Hydra refuses an int as a config-group choice.
    assert composed(name, (f"{group}='{option}'",))["hydra"]["runtime"]["choices"][group] == option


@pytest.mark.parametrize("name", [name for name in COMMANDS if "stdout_only" in defaults_of(name)])
def test_commands_but_train_write_no_job_directory(name: str) -> None:
    hydra = composed(name)["hydra"]
    assert hydra["output_subdir"] is None and hydra["runtime"]["choices"]["hydra/job_logging"] == "stdout"


def test_train_names_its_run_directory_and_leaves_its_files_to_the_run() -> None:
    # no .hydra/ and no Hydra log file: the run lifecycle opens train.log once the run is locked and will train
    cfg = composed("train")
    assert cfg["hydra"]["output_subdir"] is None and cfg["hydra"]["run"]["dir"].endswith(cfg["run_name"])
    assert cfg["hydra"]["runtime"]["choices"]["hydra/job_logging"] == "stdout"


@pytest.mark.parametrize(("overrides", "pruned"), [
    ((), "true"),
    (("profile=medium",), "false"),  # a second k=5000 pass over the whole test set: the profile leaves it out
    (("profile=medium", "prune_inactive=true"), "true"),
])
def test_the_profile_says_whether_table1_jobs_estimate_the_pruned_nll(overrides, pruned) -> None:
    from iwae_cli.specs.tables import table_spec
    from iwae_cli.tasks.tables.sweep import job_overrides

    cfg = compose("table1", overrides=list(overrides))
    assert f"eval.prune_inactive={pruned}" in job_overrides(cfg, table_spec(cfg), threads=1)


@pytest.mark.parametrize(("overrides", "dataset", "protocol"), [
    ((), "mnist", "text"),
    (("protocol=code",), "mnist", "code"),
    (("dataset=fashion_mnist", "protocol=code"), "fashion_mnist", "code"),
])
def test_the_frontier_takes_dataset_and_protocol_as_the_train_groups(overrides, dataset, protocol) -> None:
    # frontier's dataset and protocol are the groups `iwae train` takes (a plain key of that name could never be
    # set on the command line: Hydra reads dataset=... as the group)
    from iwae_cli.specs.frontier import frontier_spec

    spec = frontier_spec(compose("frontier", overrides=list(overrides)))
    assert (spec.dataset, spec.protocol) == (dataset, protocol)
