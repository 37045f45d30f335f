"""Which experiment trackers watch a run, as plain frozen settings built once from the command's `logger` node
(iwae_cli.specs.tracking), so that the trainer, a lockstep group and the evaluation commands never read the
config themselves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TensorBoardSpec:
    """Event files in each run's own directory (save_dir None), or in <save_dir>/<run name>."""

    save_dir: Path | None


@dataclass(frozen=True)
class MlflowSpec:
    """One MLflow run per run directory, in `experiment_name` of the store at tracking_uri. local_store: the
    SQLite file of the default store (under the output root, with artifact_location beside it), which the runs
    of a sweep create and share without a server; None for a store the user named."""

    tracking_uri: str
    experiment_name: str
    artifact_location: str | None
    local_store: Path | None


@dataclass(frozen=True)
class TrackingSpec:
    """The trackers of one run (none: nothing is tracked, nothing is imported), the output root its run name is
    relative to, its whole resolved config (logged as hyperparameters) and the tags given to it."""

    tensorboard: TensorBoardSpec | None = None
    mlflow: MlflowSpec | None = None
    output_root: Path = Path(".")
    config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.tensorboard is not None or self.mlflow is not None
