"""What the trackers wrote, read back with their own readers: TensorBoard's EventAccumulator and MLflow's client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iwae_cli.tracking.mlflow_backend import quiet_store_setup


def events(log_dir: Path):
    """The event files of one TensorBoard run, loaded (every scalar and image kept, orphaned data purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag's (step, value) points, in the order TensorBoard shows them."""
    loaded = events(log_dir)
    return {tag: [(e.step, e.value) for e in loaded.Scalars(tag)] for tag in loaded.Tags()["scalars"]}


def image_steps(log_dir: Path) -> dict[str, list[int]]:
    loaded = events(log_dir)
    return {tag: [e.step for e in loaded.Images(tag)] for tag in loaded.Tags()["images"]}


def hparams(log_dir: Path) -> dict[str, Any]:
    """The hyperparameters of the run's HParams session (what the HParams dashboard lists)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events(log_dir).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in values.items()}


def mlflow_client(output_root: Path):
    """A client of the default local store under output_root."""
    from mlflow.tracking import MlflowClient

    with quiet_store_setup():
        return MlflowClient(f"sqlite:///{output_root / 'mlflow.db'}")


def mlflow_runs(client) -> list:
    """Every run of the `iwae` experiment, by run name."""
    experiment = client.get_experiment_by_name("iwae")
    return sorted(client.search_runs([experiment.experiment_id]), key=lambda run: run.info.run_name)


def metric_steps(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
