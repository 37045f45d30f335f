"""RunTracker on its own (no training): what it writes, read back through TensorBoard's and MLflow's readers; a
reopened tracker continues the same runs without logging an epoch twice; any failure of a tracker is one
warning and never an exception."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from iwae_cli.reports.figures import plt, save_figure
from iwae_cli.tracking.record import flat_params, png_header
from iwae_cli.tracking.spec import MlflowSpec, TensorBoardSpec, TrackingSpec
from iwae_cli.tracking.tracker import STATE_NAME, RunTracker, source_commit
from tests.helpers.run_checks import read_json
from tests.tracking.readback import hparams, image_steps, metric_steps, mlflow_client, mlflow_runs, scalars

RUN = "mnist/L1-iwae-k5/smoke-text-paper-sum-seed0"
CONFIG = {"model": {"name": "iwae"}, "k": 5, "schedule": {"passes": [2, 1]}, "parent": None}


def local_store(root: Path) -> MlflowSpec:
    return MlflowSpec(
        f"sqlite:///{root / 'mlflow.db'}", "iwae", (root / "mlartifacts").as_uri(), root / "mlflow.db"
    )


def both(root: Path, **replaced) -> TrackingSpec:
    """TensorBoard in the run directory and MLflow's local store under root, unless `replaced`."""
    parts = {"tensorboard": TensorBoardSpec(None), "mlflow": local_store(root), **replaced}
    return TrackingSpec(
        **parts, output_root=root, config=CONFIG, tags={"table": "table1", "cell": "mnist/L1-iwae-k5"}
    )


def history(n: int) -> list[dict]:
    """n rows of train_log.csv: two epochs at the first rate, then the second stage."""
    return [
        {
            "stage": 1 + (i >= 2),
            "epoch": 1 + i % 2,
            "passes_done": i + 1,
            "learning_rate": 1e-3 if i < 2 else 5e-4,
            "train_bound": -100.0 - i,
            "valid_bound": -101.0 - i,
            "seconds": 0.5 * (i + 1),
        }
        for i in range(n)
    ]


def figure(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return save_figure(fig, path)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runs" / RUN
    path.mkdir(parents=True)
    return path


def test_a_reopened_tracker_continues_its_runs_and_logs_each_epoch_once(
    tmp_path: Path, run_dir: Path
) -> None:
    """A killed run resumes from a checkpoint before its last logged epoch and redoes the epochs after it bit for
    bit: the tracker skips what it holds, and what the killed process wrote but never recorded as logged (epoch
    3 here) is purged in TensorBoard and found in MLflow's history, so each epoch shows once."""
    from torch.utils.tensorboard import SummaryWriter

    rows = history(3)
    with RunTracker(both(tmp_path), run_dir) as first:
        first.log_epochs(rows[:2], examples_per_epoch=400)
    run_id = read_json(run_dir / STATE_NAME)["mlflow"][local_store(tmp_path).tracking_uri]["run_id"]
    client = mlflow_client(tmp_path)
    # what a kill between a record and tracking.json leaves: epoch 3 written, not recorded (TensorBoard's value
    # made wrong here, to see it purged)
    with SummaryWriter(str(run_dir)) as orphan:
        orphan.add_scalar("train/bound", 12345.0, 3)
    client.log_metric(run_id, "train/bound", rows[2]["train_bound"], step=3)

    with RunTracker(both(tmp_path), run_dir) as second:
        second.log_epochs(rows[:1], examples_per_epoch=400)  # the resumed run redoes epoch 1 ...
        second.log_epochs(rows, examples_per_epoch=400)  # ... and goes on
        second.finish({"train": {"passes_done": 3}, "test_nll": {"nll": 90.5, "standard_error": 0.25}}, [])

    logged = scalars(run_dir)
    assert logged["train/bound"] == [(1, -100.0), (2, -101.0), (3, -102.0)]
    assert logged["valid/bound"] == [(1, -101.0), (2, -102.0), (3, -103.0)]
    assert [s for s, _ in logged["train/stage"]] == [1, 2, 3] and logged["train/stage"][2][1] == 2.0
    assert logged["train/learning_rate"][2] == (3, pytest.approx(5e-4))
    assert logged["train/samples_per_second"][0] == (1, pytest.approx(800.0))  # 400 examples in 0.5 s
    assert logged["test/nll"] == [(3, 90.5)] and logged["test/nll_se"] == [(3, 0.25)]
    written = hparams(run_dir)  # the config and tags, once (the second tracker wrote none)
    assert written.pop("git_commit", None) == source_commit()
    assert written == {**flat_params(CONFIG), "table": "table1", "cell": "mnist/L1-iwae-k5", "run_name": RUN}

    (run,) = mlflow_runs(client)
    assert run.info.run_id == run_id and run.info.run_name == RUN and run.info.status == "FINISHED"
    assert metric_steps(client, run_id, "train/bound") == [(1, -100.0), (2, -101.0), (3, -102.0)]
    assert metric_steps(client, run_id, "test/nll") == [(3, 90.5)]
    assert run.data.params == {key: str(value) for key, value in flat_params(CONFIG).items()}
    assert run.data.params["schedule.passes"] == "[2, 1]" and run.data.params["parent"] == "null"
    assert {"table": "table1", "cell": "mnist/L1-iwae-k5", "run_name": RUN}.items() <= run.data.tags.items()


def test_results_and_figures_are_logged_once_however_often_the_run_is_finished(
    tmp_path: Path, run_dir: Path
) -> None:
    curve = figure(run_dir / "learning_curve.png")
    metrics = {
        "train": {"passes_done": 2},
        "test_nll": {"nll": 90.5, "standard_error": 0.25},
        "active_units": {"counts": [17, 4]},
        "test_nll_pruned": {"nll": 90.75, "standard_error": 0.25},
    }
    for _ in range(2):  # e.g. a table command run again over finished runs
        with RunTracker(both(tmp_path), run_dir) as tracker:
            tracker.log_epochs(history(2), examples_per_epoch=400)
            tracker.finish(metrics, [curve])
    logged = scalars(run_dir)
    assert logged["active_units/layer1"] == [(2, 17.0)] and logged["active_units/total"] == [(2, 21.0)]
    assert logged["test/nll_pruned"] == [(2, 90.75)]
    assert image_steps(run_dir) == {"figures/learning_curve": [2]}
    client = mlflow_client(tmp_path)
    (run,) = mlflow_runs(client)
    assert metric_steps(client, run.info.run_id, "test/nll") == [(2, 90.5)]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == [
        "figures/learning_curve.png"
    ]

    with RunTracker(both(tmp_path), run_dir) as tracker:  # re-evaluated: the new value is logged
        tracker.finish({**metrics, "test_nll": {"nll": 89.0, "standard_error": 0.5}}, [curve])
    assert scalars(run_dir)["test/nll"] == [(2, 90.5), (2, 89.0)]


def unreachable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    return {"mlflow": MlflowSpec("http://127.0.0.1:9", "iwae", None, None)}


def unwritable_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    blocker = tmp_path / "afile"  # a file where the folder should be: even root cannot write below it
    blocker.write_text("x")
    return {"mlflow": MlflowSpec(f"sqlite:///{blocker / 'mlflow.db'}", "iwae", None, None)}


def unwritable_log_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    return {"tensorboard": TensorBoardSpec(blocker / "tb")}


def missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    for name in (
        "mlflow",
        "mlflow.entities",
        "mlflow.tracking",
    ):  # `import` then fails as without the package
        monkeypatch.setitem(sys.modules, name, None)
    return {}


@pytest.mark.parametrize(
    ("failure", "stopped"),
    [
        (unreachable_server, "mlflow"),
        (unwritable_store, "mlflow"),
        (unwritable_log_folder, "tensorboard"),
        (missing_package, "mlflow"),
    ],
    ids=lambda f: getattr(f, "__name__", f),
)
def test_a_failing_tracker_is_one_warning_and_the_other_goes_on(
    tmp_path: Path,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure,
    stopped: str,
) -> None:
    spec = both(tmp_path, **failure(tmp_path, monkeypatch))
    with caplog.at_level(logging.WARNING), RunTracker(spec, run_dir) as tracker:
        tracker.log_epochs(history(1), examples_per_epoch=400)
        tracker.log_epochs(history(2), examples_per_epoch=400)
        tracker.finish({"train": {"passes_done": 2}}, [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"{stopped} stopped watching this run" in warnings[0], warnings
    assert set(read_json(run_dir / STATE_NAME)) == {"tensorboard", "mlflow"} - {stopped}
    if stopped == "mlflow":
        assert [s for s, _ in scalars(run_dir)["train/bound"]] == [1, 2]
    else:
        client = mlflow_client(tmp_path)
        (run,) = mlflow_runs(client)
        assert [s for s, _ in metric_steps(client, run.info.run_id, "train/bound")] == [1, 2]


def test_no_tracker_writes_nothing(run_dir: Path) -> None:
    with RunTracker(TrackingSpec(), run_dir) as tracker:
        tracker.log_epochs(history(2), examples_per_epoch=400)
        tracker.finish({"train": {"passes_done": 2}}, [])
    assert list(run_dir.iterdir()) == []


def test_a_png_header_gives_its_size_and_the_config_flattens_to_plain_values(tmp_path: Path) -> None:
    path = figure(tmp_path / "a.png")
    width, height, colorspace = png_header(path.read_bytes())
    assert plt.imread(path).shape == (height, width, 4) and colorspace == 4  # matplotlib writes RGBA
    assert flat_params({"a": {"b": [1, 2], "c": None}, "d": True}) == {
        "a.b": "[1, 2]",
        "a.c": "null",
        "d": True,
    }
