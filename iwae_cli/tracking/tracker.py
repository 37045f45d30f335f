"""One run's experiment trackers (TensorBoard, MLflow), which watch it and can never stop it.

A tracker opens at its first record, so a run with nothing new to log creates nothing. What each tracker holds
of the run is kept in the run directory's tracking.json, written atomically after every record: the MLflow run
id, the last epoch logged and the results and figures logged. A resumed run redoes the epochs after its last
checkpoint bit for bit, and those already logged are skipped; a run trained before a tracker was turned on has
its earlier epochs logged when it is next resumed or finished.

Any failure of a tracker (its package broken, an unreachable server, an unwritable folder) is one warning line,
and that tracker stops watching the run; training, checkpoints and train_log.csv/metrics.json go on unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from iwae_cli.core.atomic import atomic_write_json
from iwae_cli.errors import Interrupted, IwaeError, first_line
from iwae_cli.runs.records import read_json
from iwae_cli.tracking.mlflow_backend import MlflowBackend
from iwae_cli.tracking.record import epoch_values, flat_params, result_step, result_values
from iwae_cli.tracking.spec import TrackingSpec
from iwae_cli.tracking.tensorboard_backend import TensorBoardBackend

log = logging.getLogger(__name__)

STATE_NAME = "tracking.json"


class Backend(Protocol):
    """A tracker: opened with what it held of the run (its entry in tracking.json), returns what to keep."""

    name: str
    key: str

    def open(self, entry: dict[str, Any], params: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]: ...

    def log_metrics(self, step: int, values: dict[str, float]) -> None: ...

    def log_figures(self, step: int, paths: list[Path]) -> None: ...

    def close(self, outcome: str | None) -> None: ...


@functools.cache
def source_commit() -> str | None:
    """The git commit of the package's source tree; None where the package is not a git checkout's own (an
    installed wheel, no git), so that no failure here can reach a run."""
    package = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        top, commit = out.stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    # a wheel installed into a virtual environment inside some other repository is not that repository's code
    return commit if out.returncode == 0 and Path(top).resolve() / package.name == package else None


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RunTracker:
    """The trackers of the run in run_dir (none where the spec enables none: then every call does nothing).

    Each `with` block is one phase of the run (its training, then its finishing): the trackers open at the
    block's first record and close at its end, marking the MLflow run KILLED (Interrupted) or FAILED (another
    error), FINISHED once `finish` has logged the results, and otherwise leaving it running. A tracker that
    failed stays stopped for the rest of the command, so its warning is given once."""

    def __init__(self, spec: TrackingSpec, run_dir: Path):
        self.spec, self.run_dir = spec, run_dir
        self.backends: list[Backend] = []
        self.stopped: set[str] = set()
        self.state: dict[str, Any] = {}
        self.opened = False
        self.outcome: str | None = None

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if error is not None:
            self.outcome = "KILLED" if isinstance(error, Interrupted | KeyboardInterrupt) else "FAILED"
        self.close(self.outcome)
        self.outcome = None

    @property
    def log_extra(self) -> dict[str, str]:
        """Marks the warnings as this run's (a lockstep group writes them to this run's train.log alone)."""
        return {"run_dir": str(self.run_dir)}

    @property
    def run_name(self) -> str:
        """The run's path under <output_root>/runs (its whole path where it lies elsewhere)."""
        runs = self.spec.output_root / "runs"
        return str(self.run_dir.relative_to(runs)) if self.run_dir.is_relative_to(runs) else str(self.run_dir)

    def log_epochs(self, history: list[dict[str, Any]], examples_per_epoch: int) -> None:
        """Log each epoch of the run's history (train_log.csv's rows) that a tracker does not hold yet."""
        for backend in self._open():
            entry = self._entry(backend)
            new = [(i, row) for i, row in enumerate(history) if row["passes_done"] > entry["logged_through"]]

            def log(backend: Backend = backend, new: list = new) -> None:
                for i, row in new:
                    previous = history[i - 1] if i else None
                    backend.log_metrics(row["passes_done"], epoch_values(row, previous, examples_per_epoch))

            if new and self._call(backend, log):
                entry["logged_through"] = new[-1][1]["passes_done"]
        self._save()

    def finish(self, metrics: dict[str, Any], figures: list[Path]) -> None:
        """Log the run's results (metrics.json) and figures at its last epoch, each unless logged as it is;
        the MLflow run ends FINISHED."""
        results = result_values(metrics)
        for backend in self._open():
            entry = self._entry(backend)
            logged, shown = entry.setdefault("results", {}), entry.setdefault("figures", {})
            new = {key: value for key, value in results.items() if logged.get(key) != value}
            changed = [path for path in figures if shown.get(path.name) != digest(path)]
            step = result_step(metrics, entry["logged_through"])

            def log(
                backend: Backend = backend, new: dict = new, changed: list = changed, step: int = step
            ) -> None:
                if new:
                    backend.log_metrics(step, new)
                if changed:
                    backend.log_figures(step, changed)

            if self._call(backend, log):
                logged.update(new)
                shown.update({path.name: digest(path) for path in changed})
        self.outcome = "FINISHED"
        self._save()

    def close(self, outcome: str | None) -> None:
        """Close every open tracker (MLflow's run marked with `outcome` where given); the next record opens
        them again."""
        for backend in list(self.backends):
            self._call(backend, lambda backend=backend: backend.close(outcome))
        self.backends, self.opened = [], False

    def _open(self) -> list[Backend]:
        """The trackers, opened at the first call: each continues what tracking.json says it holds."""
        if self.opened or not self.spec.enabled:
            return self.backends
        self.opened = True
        self.state = read_json(self.run_dir / STATE_NAME)
        params = flat_params(self.spec.config)
        commit = source_commit()
        tags = {**self.spec.tags, "run_name": self.run_name, **({"git_commit": commit} if commit else {})}
        for backend in [b for b in self._backends() if b.name not in self.stopped]:
            if self._call(backend, lambda backend=backend: self._start(backend, params, tags)):
                self.backends.append(backend)
        self._save()
        return self.backends

    def _start(self, backend: Backend, params: dict[str, Any], tags: dict[str, str]) -> None:
        held = self.state.get(backend.name, {}).get(backend.key, {})
        opened = backend.open(held, params, tags)
        self.state.setdefault(backend.name, {})[backend.key] = {**held, **opened}

    def _backends(self) -> list[Backend]:
        """The trackers the spec names (each imports its package only when it opens)."""
        backends: list[Backend] = []
        if self.spec.tensorboard is not None:
            backends.append(TensorBoardBackend(self.spec.tensorboard, self.run_dir, self.run_name))
        if self.spec.mlflow is not None:
            backends.append(MlflowBackend(self.spec.mlflow, self.run_name))
        return backends

    def _entry(self, backend: Backend) -> dict[str, Any]:
        return self.state[backend.name][backend.key]

    def _call(self, backend: Backend, action: Callable[[], None]) -> bool:
        """Run a tracker's action; on any failure warn once and stop that tracker (never the run)."""
        try:
            action()
            return True
        except Exception as e:  # noqa: BLE001 - whatever a tracker raises, the run goes on
            reason = first_line(e)
            log.warning(
                "%s: %s stopped watching this run (%s); training and its records go on",
                self.run_dir,
                backend.name,
                reason if len(reason) < 200 else reason[:200] + "...",
                extra=self.log_extra,
            )
            self.stopped.add(backend.name)
            if backend in self.backends:
                self.backends.remove(backend)
            try:
                backend.close(None)  # what it holds open (a half-opened one may hold nothing)
            except Exception:  # noqa: BLE001 - its failure was reported
                pass
            return False

    def _save(self) -> None:
        """tracking.json, atomically; a run directory that cannot take it will fail the run's own records."""
        if not self.state:
            return
        try:
            atomic_write_json(self.run_dir / STATE_NAME, self.state)
        except IwaeError as e:
            log.warning(
                "%s: %s not written (%s)", self.run_dir, STATE_NAME, first_line(e), extra=self.log_extra
            )
