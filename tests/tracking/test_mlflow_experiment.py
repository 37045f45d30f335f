"""The MLflow experiment iwae logs to says it holds model training, so MLflow 3's UI lists its runs (not the
GenAI view of traces); read back with MLflow's own client."""

from __future__ import annotations

from pathlib import Path

import pytest

from iwae_cli.tracking.mlflow_backend import EXPERIMENT_KIND, MlflowBackend
from iwae_cli.tracking.spec import MlflowSpec
from tests.tracking.readback import mlflow_client

KEY, KIND = EXPERIMENT_KIND


def open_run(root: Path) -> None:
    spec = MlflowSpec(f"sqlite:///{root / 'mlflow.db'}", "iwae", (root / "mlartifacts").as_uri(), root / "mlflow.db")
    backend = MlflowBackend(spec, "mnist/L1-iwae-k5/smoke-text-paper-sum-seed0")
    backend.open({}, {"k": 5}, {})
    backend.close("FINISHED")


def test_the_experiment_is_marked_as_model_training(tmp_path: Path) -> None:
    assert EXPERIMENT_KIND == ("mlflow.experimentKind", "custom_model_development")  # what MLflow 3's UI writes
    open_run(tmp_path)
    experiment = mlflow_client(tmp_path).get_experiment_by_name("iwae")
    assert experiment.tags[KEY] == KIND


@pytest.mark.parametrize(("before", "after"), [(None, KIND), ("genai_development", "genai_development")])
def test_an_existing_experiment_is_marked_unless_a_kind_was_chosen(
    tmp_path: Path, before: str | None, after: str
) -> None:
    # an experiment made by an iwae that did not mark it gets the mark; a kind chosen in the UI is kept
    client = mlflow_client(tmp_path)
    client.create_experiment("iwae", tags={KEY: before} if before else None)
    open_run(tmp_path)
    assert client.get_experiment_by_name("iwae").tags[KEY] == after
