"""The `logger` config group and `tags` as the tracking spec reads them (iwae_cli.specs.tracking), and the
overrides with which the table commands hand them to their training jobs, tagged with table and cell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict, read_write

from iwae_cli.errors import ConfigError
from iwae_cli.specs.identity import IDENTITY_SOURCES
from iwae_cli.specs.tables import table_spec
from iwae_cli.specs.tracking import tracking_spec
from iwae_cli.tasks.tables.sweep import tracking_overrides
from iwae_cli.tasks.tables.table2 import switch_command


@pytest.fixture(autouse=True)
def packaged_configs() -> Iterator[None]:
    with initialize_config_module(config_module="iwae_cli.conf", version_base="1.3"):
        yield
    HydraConfig.instance().cfg = None


def spec(*overrides: str, config: str = "train"):
    """The tracking spec of `config` composed with `overrides`, as its job sees it."""
    cfg = compose(config, overrides=["output_root=/tmp/out", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for run_name's ${hydra:...}
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return tracking_spec(cfg)


def test_no_tracker_by_default_and_many_is_the_list_of_both() -> None:
    assert not spec().enabled and not spec("logger=none").enabled
    many, listed = spec("logger=many"), spec("logger=[tensorboard,mlflow]")
    assert many == listed and many.tensorboard is not None and many.mlflow is not None
    assert many.mlflow.tracking_uri == "sqlite:////tmp/out/mlflow.db"  # the local store under the output root
    assert many.mlflow.artifact_location == "file:///tmp/out/mlartifacts"
    assert many.config["model"]["name"] == "iwae" and many.tags == {}
    server = spec("logger=mlflow", "logger.mlflow.tracking_uri=http://tracking:5000").mlflow
    assert server.local_store is None and server.artifact_location is None  # the server's own


@pytest.mark.parametrize("config", ["train", "switch_objective", "eval_nll", "active_units", "table1"])
def test_every_command_that_trains_or_evaluates_takes_a_logger(config: str) -> None:
    assert spec("logger=tensorboard", config=config).tensorboard is not None


def test_a_bad_tracker_setting_is_one_line() -> None:
    with pytest.raises(ConfigError, match="experiment_name must be a name"):
        spec("logger=mlflow", "logger.mlflow.experiment_name=''")
    with pytest.raises(ConfigError, match="logger.wandb is not a tracker"):
        spec("+logger.wandb.project=x")


def test_trackers_are_not_part_of_what_a_checkpoint_is_resumed_by() -> None:
    assert not {"logger", "tags"} & set(IDENTITY_SOURCES)


def test_a_table_tags_each_training_job_with_its_table_and_cell() -> None:
    table = compose(
        "table1",
        overrides=["logger=mlflow", "logger.mlflow.experiment_name=tables", "+tags.note=x"],
        return_hydra_config=True,
    )
    HydraConfig.instance().set_config(table)
    forwarded = tracking_overrides(table)
    assert forwarded == [
        "logger=mlflow",
        "logger.mlflow.experiment_name=tables",
        "+tags.note=x",
        "++tags.table=table1",
    ]
    job = spec(*forwarded, "dataset=omniglot", "layers='2'", "model=vae", "k=50")
    assert job.tags == {"note": "x", "table": "table1", "cell": "omniglot/L2-vae-k50"}
    assert job.mlflow.experiment_name == "tables"

    table2 = compose("table2", overrides=["logger=tensorboard"], return_hydra_config=True)
    HydraConfig.instance().set_config(table2)
    command = switch_command(table2, table_spec(table2), Path("/parent"), ("vae", 1), ("iwae", 50), threads=1)
    overrides = command[command.index("switch-objective") + 1 :]
    assert "++tags.table=table2" in overrides
    switch = compose("switch_objective", overrides=overrides)  # as the command line hands them to Hydra
    assert switch.tags.cell == "mnist/L1-vae-k1 -> iwae-k50"


def test_a_table_without_trackers_passes_none_on() -> None:
    table = compose("table_extra", return_hydra_config=True)
    HydraConfig.instance().set_config(table)
    assert tracking_overrides(table) == []
