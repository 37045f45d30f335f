"""The trackers a command's `logger` node asks for (iwae_cli.tracking.spec), checked once before any work: an
unknown tracker, or one whose package is not installed, is a one-line ConfigError (exit 2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iwae_cli.errors import ConfigError
from iwae_cli.tracking.spec import MlflowSpec, TensorBoardSpec, TrackingSpec

# each tracker of conf/logger and the package it needs (the `tracking` extra installs both)
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
CHOICES = "logger=none, tensorboard, mlflow, many or [tensorboard,mlflow]"


def tracking_spec(cfg: DictConfig, run_config: Any = None) -> TrackingSpec:
    """The trackers of cfg's `logger` node for a run whose resolved config is run_config (default: cfg itself);
    tables' runs are tagged with their cell (dataset, layers, objective and k) beside the table."""
    node = cfg.get("logger") or {}
    for name in node:
        if name not in PACKAGES:
            raise ConfigError(f"logger.{name} is not a tracker; choose {CHOICES}")
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(
                f"logger={name} needs the {PACKAGES[name]} package, which is not installed: "
                "pip install 'iwae-cli[tracking]', or train without it (logger=none)"
            )
    if not node:
        return TrackingSpec()
    output_root = Path(cfg.output_root)
    run_config = cfg if run_config is None else run_config
    return TrackingSpec(
        tensorboard=tensorboard_spec(node.tensorboard) if "tensorboard" in node else None,
        mlflow=mlflow_spec(node.mlflow, output_root) if "mlflow" in node else None,
        output_root=output_root,
        config=OmegaConf.to_container(run_config, resolve=True),
        tags=run_tags(cfg.get("tags") or {}, run_config),
    )


def tensorboard_spec(node: Any) -> TensorBoardSpec:
    save_dir = node.get("save_dir")
    return TensorBoardSpec(None if save_dir in (None, "") else Path(str(save_dir)).expanduser().absolute())


def mlflow_spec(node: Any, output_root: Path) -> MlflowSpec:
    """The store at tracking_uri, or the default: a SQLite file under the output root, artifacts beside it."""
    name = node.get("experiment_name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"logger.mlflow.experiment_name must be a name, got {name!r}")
    uri, artifacts = node.get("tracking_uri"), node.get("artifact_location")
    if uri in (None, ""):
        store = output_root.absolute() / "mlflow.db"
        default_artifacts = (output_root.absolute() / "mlartifacts").as_uri()
        return MlflowSpec(f"sqlite:///{store}", name, artifacts or default_artifacts, store)
    if not isinstance(uri, str):
        raise ConfigError(
            f"logger.mlflow.tracking_uri must be a URI (http://host:5000, sqlite:///path), got {uri!r}"
        )
    return MlflowSpec(uri, name, artifacts or None, None)


def run_tags(tags: Any, run_config: Any) -> dict[str, str]:
    """The `tags` node as text; a table's run (tags.table set) also names its cell, unless given one."""
    if not isinstance(tags, dict | DictConfig):
        raise ConfigError(
            f"tags must be a mapping of names to values, e.g. +tags.note=baseline; got tags={tags}"
        )
    plain = {str(key): str(value) for key, value in tags.items()}
    if "table" in plain and "cell" not in plain:
        layers = len(run_config.arch.latent_units)
        plain["cell"] = f"{run_config.dataset.name}/L{layers}-{run_config.model.name}-k{run_config.k}"
    return plain
