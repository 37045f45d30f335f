"""MLflow: one MLflow run per run directory, through MlflowClient (no global active run, so the runs of a
lockstep group log side by side from one process).

By default the store is a SQLite file under the output root (MLflow 3 refuses the plain file store), created
under a file lock because the jobs of a sweep may start together. The run's id is kept in its directory, so a
resumed run continues the same MLflow run; the epochs that run already holds are read back from its metric
history, so none is logged twice.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

from iwae_cli.tracking.spec import MlflowSpec

# MLflow's defaults retry an unreachable server for minutes (7 retries, exponential backoff); a tracker must not
# hold a run up that long. Used where the environment does not set them.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
BATCH = 100  # MLflow's most params or tags per request
# MLflow 3's UI shows an experiment either as GenAI (traces, evaluations) or as model training (the runs table) by
# this tag, which the UI's own kind selector writes ("Machine learning"); unset, the UI infers a kind from what
# the experiment holds, or asks. Newer UIs (3.14) also have a GenAI / Model training switch in the sidebar,
# remembered per browser, which the docs tell the user about.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
PARAM_LENGTH = 6000  # MLflow's longest param value


@contextmanager
def quiet_store_setup() -> Iterator[None]:
    """Creating a SQLite store prints a page of INFO lines (MLflow's and alembic's migrations) and SQLAlchemy
    deprecation warnings about MLflow's own code; none of it concerns the user."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class MlflowBackend:
    """One run directory's MLflow run; `open` before logging (it imports MLflow and reaches the store)."""

    name = "mlflow"

    def __init__(self, spec: MlflowSpec, run_name: str):
        self.spec, self.run_name = spec, run_name
        self.key = spec.tracking_uri  # its state in the run's tracking.json: one MLflow run per store
        self.client: Any = None
        self.run_id = ""

    def open(self, entry: dict[str, Any], params: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        """Continue the run's MLflow run (entry's run_id) if the store still has it, else create one; log the
        params it lacks and set the tags. Returns the state to keep: the run id and the last epoch it holds."""
        # imported before quiet_store_setup: the import sets up MLflow's logging, which the setup then quiets
        from mlflow.entities import RunTag
        from mlflow.tracking import MlflowClient

        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        store = self.spec.local_store
        with (
            quiet_store_setup(),
            FileLock(store.with_name(f".{store.name}.lock")) if store else nullcontext(),
        ):
            self.client = MlflowClient(self.spec.tracking_uri)
            experiment_id = self._experiment_id()
        run = self._existing_run(entry.get("run_id"))
        if run is None:
            run = self.client.create_run(experiment_id, run_name=self.run_name)
            logged, known = 0, {}
        else:
            self.client.update_run(run.info.run_id, status="RUNNING")
            history = self.client.get_metric_history(run.info.run_id, "train/bound")
            logged = max([int(entry.get("logged_through", 0))] + [m.step for m in history])
            known = run.data.params
        self.run_id = run.info.run_id
        self._log_params({k: str(v)[:PARAM_LENGTH] for k, v in params.items() if k not in known})
        self._log_batch(tags=[RunTag(k, v) for k, v in tags.items()])
        return {"run_id": self.run_id, "logged_through": logged}

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log_figures(self, step: int, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path="figures")

    def close(self, outcome: str | None) -> None:
        """Mark the MLflow run FINISHED, KILLED or FAILED; None leaves it RUNNING (training is over, its
        evaluation is still to come)."""
        if outcome is not None:
            self.client.set_terminated(self.run_id, outcome)

    def _experiment_id(self) -> str:
        """The experiment's id, created if need be, marked as model training (EXPERIMENT_KIND) so that MLflow 3's
        UI shows its runs; one made before iwae marked them gets the mark, a kind chosen in the UI stays."""
        name = self.spec.experiment_name
        key, kind = EXPERIMENT_KIND
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            return self.client.create_experiment(
                name, artifact_location=self.spec.artifact_location, tags={key: kind}
            )
        if key not in experiment.tags:
            self.client.set_experiment_tag(experiment.experiment_id, key, kind)
        return experiment.experiment_id

    def _existing_run(self, run_id: str | None) -> Any:
        """The run with this id, or None where the store has none (another store, or deleted)."""
        if not run_id:
            return None
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return None if run.info.lifecycle_stage == "deleted" else run

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), BATCH):
            self._log_batch(params=items[start : start + BATCH])

    def _log_batch(self, **entities: list) -> None:
        if any(entities.values()):
            self.client.log_batch(self.run_id, **entities)
