"""The trackers through the real `iwae` command line, read back with TensorBoard's and MLflow's own readers: a
run's epochs, results, config, tags and figures; a killed run resumed into the same tracker runs with no epoch
twice; each member of a lockstep group as its own run; a missing package refused before training; a failing
tracker that leaves the run bit for bit as it is without one."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from iwae_cli.runs.records import read_json
from iwae_cli.tracking.tracker import STATE_NAME, source_commit
from tests.conftest import SMOKE_RUN
from tests.helpers.background import kill_leftovers
from tests.helpers.run_checks import (
    assert_same_run,
    background_iwae,
    run_iwae,
    schedule_name,
    schedule_overrides,
)
from tests.tracking.readback import hparams, image_steps, metric_steps, mlflow_client, mlflow_runs, scalars

SMOKE = ("train", "schedule=smoke", "k=5", "progress=false")  # as the session's smoke_run_template


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    kill_leftovers()


def logged_bounds(run_dir: Path, column: str = "train_bound") -> list[tuple[int, float]]:
    """train_log.csv's (epoch, bound) points."""
    with open(run_dir / "train_log.csv", newline="") as f:
        return [(int(row["passes_done"]), float(row[column])) for row in csv.DictReader(f)]


def float32(points: list[tuple[int, float]]) -> list:
    """TensorBoard keeps scalars as float32."""
    return [(step, pytest.approx(value, rel=1e-6)) for step, value in points]


def warnings_in(result) -> list[str]:
    return [
        line for line in (result.stdout + result.stderr).splitlines() if "stopped watching this run" in line
    ]


def test_a_tracked_run_logs_its_epochs_results_config_tags_and_figures(iwae_cli, output_root: Path) -> None:
    result = iwae_cli(
        *SMOKE,
        "protocol=code",
        "logger=many",
        "+tags.note=first_look",
        "evaluate=true",
        "eval.k=20",
        "eval.examples=40",
        "eval.prune_inactive=true",
        "active_units.examples=100",
        "active_units.posterior_samples=10",
    )
    assert warnings_in(result) == []
    name = "mnist/L1-iwae-k5/smoke-code-original_code-sum-seed0"
    run_dir = iwae_cli.run_dir(name)
    metrics = read_json(run_dir / "metrics.json")

    # TensorBoard, in the run directory: every epoch (protocol=code holds out images: a validation bound) ...
    tb = scalars(run_dir)
    assert tb["train/bound"] == float32(logged_bounds(run_dir))
    assert tb["valid/bound"] == float32(logged_bounds(run_dir, "valid_bound"))
    assert [v for _, v in tb["train/stage"]] == [1.0, 2.0]
    assert (
        [s for s, _ in tb["train/learning_rate"]] == [s for s, _ in tb["train/samples_per_second"]] == [1, 2]
    )
    # ... the results at the last epoch ...
    assert tb["test/nll"] == float32([(2, metrics["test_nll"]["nll"])])
    assert tb["test/nll_se"] == float32([(2, metrics["test_nll"]["standard_error"])])
    assert tb["test/nll_pruned"] == float32([(2, metrics["test_nll_pruned"]["nll"])])
    assert tb["active_units/layer1"] == [(2, metrics["active_units"]["counts"][0])]
    assert tb["active_units_expected/total"] == [(2, sum(metrics["active_units_expected"]["counts"]))]
    assert image_steps(run_dir) == {
        f"figures/{f}": [2] for f in ("learning_curve", "samples", "active_units")
    }
    # ... and the resolved config and tags as hyperparameters
    written = hparams(run_dir)
    assert written["model.name"] == "iwae" and written["protocol.name"] == "code" and written["k"] == 5
    assert written["note"] == "first_look" and written["run_name"] == name
    assert written.get("git_commit") == source_commit()

    # MLflow, in the local store under the output root
    client = mlflow_client(output_root)
    (run,) = mlflow_runs(client)
    assert run.info.run_name == name and run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "iwae" and run.data.params["schedule.passes"] == "[1, 1]"
    assert run.data.tags["note"] == "first_look" and run.data.tags["run_name"] == name
    assert run.data.tags.get("git_commit") == source_commit()
    assert metric_steps(client, run.info.run_id, "train/bound") == logged_bounds(run_dir)
    assert metric_steps(client, run.info.run_id, "valid/bound") == logged_bounds(run_dir, "valid_bound")
    assert run.data.metrics["test/nll"] == metrics["test_nll"]["nll"]
    assert run.data.metrics["active_units/total"] == sum(metrics["active_units"]["counts"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert artifacts == {f"figures/{f}.png" for f in ("learning_curve", "samples", "active_units")}
    assert read_json(run_dir / STATE_NAME)["mlflow"][f"sqlite:///{output_root / 'mlflow.db'}"]["run_id"] == (
        run.info.run_id
    )


# one stage of two 400-step epochs, checkpointed only at its end: killed in epoch 2, the run resumes from nothing
# and redoes epoch 1, which the trackers already hold
KILLED_SCHEDULE = {"train_examples": 8000, "passes": [2], "learning_rates": [1e-3]}
KILLED_ARGS = (
    *SMOKE,
    *schedule_overrides(**KILLED_SCHEDULE),
    "checkpoint_minutes=60",
    "threads=1",
    "logger=many",
)
KILLED_RUN = f"mnist/L1-iwae-k5/{schedule_name('smoke', **KILLED_SCHEDULE)}-text-paper-sum-seed0"


def test_a_killed_run_resumes_its_tracker_runs_and_logs_no_epoch_twice(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    run_dir = output_root / "runs" / KILLED_RUN
    store = f"sqlite:///{output_root / 'mlflow.db'}"

    def first_epoch_tracked() -> bool:
        state = read_json(run_dir / STATE_NAME)
        return all(
            entries and next(iter(entries.values()))["logged_through"] >= 1
            for entries in (state.get("tensorboard"), state.get("mlflow"))
        )

    process = background_iwae(iwae_script, KILLED_ARGS, cli_env, tmp_path / "first")
    process.wait_for(first_epoch_tracked, "the first epoch logged")
    process.popen.kill()
    process.wait()
    assert not (run_dir / "checkpoint.pt").exists(), "the run reached its checkpoint: lengthen the epochs"
    run_id = read_json(run_dir / STATE_NAME)["mlflow"][store]["run_id"]

    run_iwae(iwae_script, KILLED_ARGS, cli_env, tmp_path / "resume")
    assert scalars(run_dir)["train/bound"] == float32(logged_bounds(run_dir))  # epochs 1 and 2, once each
    client = mlflow_client(output_root)
    (run,) = mlflow_runs(client)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert metric_steps(client, run_id, "train/bound") == logged_bounds(run_dir)
    assert [s for s, _ in metric_steps(client, run_id, "train/samples_per_second")] == [1, 2]


def test_each_member_of_a_lockstep_group_is_its_own_tracked_run(iwae_cli, output_root: Path) -> None:
    result = iwae_cli(
        "train",
        "-m",
        "model=vae,iwae",
        "group=true",
        "schedule=smoke",
        "progress=false",
        "compile=false",
        "logger=many",
    )
    assert "training 2 runs in lockstep" in result.stdout and warnings_in(result) == []
    client = mlflow_client(output_root)
    runs = mlflow_runs(client)
    names = [f"mnist/L1-{model}-k5/smoke-text-paper-sum-seed0" for model in ("iwae", "vae")]
    assert [run.info.run_name for run in runs] == names
    for run, name in zip(runs, names, strict=True):
        run_dir = iwae_cli.run_dir(name)
        assert scalars(run_dir)["train/bound"] == float32(logged_bounds(run_dir))
        assert metric_steps(client, run.info.run_id, "train/bound") == logged_bounds(run_dir)
        assert run.data.params["model.name"] == name.split("-")[1] and run.info.status == "FINISHED"


@pytest.mark.parametrize("package", ["tensorboard", "mlflow"])
def test_a_requested_tracker_without_its_package_is_one_error_before_training(
    iwae_cli, monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # importlib finds no such package
    result = iwae_cli(*SMOKE, f"logger={package}", ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert (
        lines[0].startswith(f"error: logger={package} needs the {package} package")
        and "[tracking]" in lines[0]
    )
    assert not (iwae_cli.run_dir() / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("logger", "stopped"),
    [
        (("logger=many",), None),
        (
            ("logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9"),
            "mlflow",
        ),  # nothing listens there
        (("logger=tensorboard", "logger.tensorboard.save_dir={blocker}/tb"), "tensorboard"),  # under a file
    ],
    ids=["both", "unreachable-server", "unwritable-folder"],
)
def test_a_tracker_only_reads_the_run_and_a_failing_one_is_one_warning(
    iwae_cli, smoke_run_template: Path, tmp_path: Path, logger: tuple[str, ...], stopped: str | None
) -> None:
    """The run's checkpoint, train_log.csv and metrics are those of the same run without a tracker, bit for
    bit, whether its trackers work or fail."""
    blocker = tmp_path / "afile"  # a file where a folder should be: even root cannot write below it
    blocker.write_text("x")
    result = iwae_cli(*SMOKE, *(arg.format(blocker=blocker) for arg in logger))
    warnings = warnings_in(result)
    assert len(warnings) == (stopped is not None) and all(f" {stopped} stopped" in line for line in warnings)
    assert_same_run(iwae_cli.run_dir(), smoke_run_template)


def test_trackers_turned_on_after_training_get_the_run_when_it_is_finished_or_evaluated(
    iwae_cli, smoke_run: Path, output_root: Path
) -> None:
    """Another logger is no other run (it is not part of the checkpoint's fingerprint): the finished run's
    command run again with logger=tensorboard logs its epochs; eval-nll with logger=many logs the new NLL to
    that TensorBoard run and to a new MLflow run holding the run's config."""
    iwae_cli(*SMOKE, "logger=tensorboard")
    assert scalars(smoke_run)["train/bound"] == float32(logged_bounds(smoke_run))
    iwae_cli("eval-nll", f"run={smoke_run}", "k=5", "examples=20", "logger=many")
    nll = read_json(smoke_run / "metrics.json")["test_nll"]["nll"]
    assert scalars(smoke_run)["test/nll"] == float32([(2, nll)])
    client = mlflow_client(output_root)
    (run,) = mlflow_runs(client)
    assert run.info.run_name == SMOKE_RUN and run.data.params["model.name"] == "iwae"
    assert run.data.metrics["test/nll"] == nll and run.info.status == "FINISHED"
