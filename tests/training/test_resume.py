"""Stop real `iwae` processes with real signals, resume them, compare with uninterrupted runs bit for bit."""

from __future__ import annotations

import shlex
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import SMOKE_RUN
from tests.helpers.background import kill_leftovers
from tests.helpers.run_checks import (
    assert_same_run,
    background_iwae,
    bound_columns,
    environment,
    load_checkpoint,
    read_json,
    run_iwae,
    schedule_name,
    schedule_overrides,
)

# 2 x 200 steps, a checkpoint every ~0.2 s: long enough to be killed mid-way, a few seconds in all
SCHEDULE = {"train_examples": 4000, "passes": [1, 1], "learning_rates": [1e-3, 5e-4]}
TRAIN_ARGS = ("train", "schedule=smoke", *schedule_overrides(**SCHEDULE), "checkpoint_minutes=0.0035",
              "progress=false", "threads=1")
RUN = f"mnist/L1-iwae-k5/{schedule_name('smoke', **SCHEDULE)}-text-paper-sum-seed0"  # TRAIN_ARGS's run


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    kill_leftovers()


class Reference:
    """An uninterrupted run, started in the background when first requested and awaited when needed."""

    def __init__(self, script: Path, args: tuple[str, ...], env: dict[str, str], root: Path):
        self.root = root
        self.process = background_iwae(script, args, env, root / "logs")
        self._done = False

    def run_dir(self, name: str = RUN) -> Path:
        if not self._done:
            self.process.succeed()
            self._done = True
        return self.root / "out" / "runs" / name


@pytest.fixture(scope="module")
def reference_run(iwae_script: Path, mnist_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("reference")
    reference = Reference(iwae_script, TRAIN_ARGS, environment(mnist_data_dir, root / "out"), root)
    reference.process.popen.keep = True  # shared by the module's tests: runs on across them
    yield reference
    if reference.process.popen.poll() is None:
        reference.process.popen.kill()
        reference.process.popen.wait()


def checkpoint_exists(run_dir: Path):
    return lambda: (run_dir / "checkpoint.pt").exists()


def first_epoch_logged(run_dir: Path):
    return lambda: (run_dir / "train_log.csv").exists()


# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sig, trigger, delay",
    [
        (signal.SIGTERM, checkpoint_exists, 0.3),  # in stage 1
        (signal.SIGINT, first_epoch_logged, 0.0),  # at the stage boundary
        (signal.SIGTERM, first_epoch_logged, 0.15),  # in stage 2
    ],
    ids=["term-stage1", "int-boundary", "term-stage2"],
)
def test_signal_stops_cleanly_and_resume_is_exact(
    reference_run: Reference, iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path,
    sig: signal.Signals, trigger, delay: float,
) -> None:
    run_dir = output_root / "runs" / RUN
    process = background_iwae(iwae_script, TRAIN_ARGS, cli_env, tmp_path / "first")
    process.wait_for(trigger(run_dir), "training started")
    time.sleep(delay)
    assert process.popen.poll() is None, "the run finished before the signal: lengthen the schedule"
    process.popen.send_signal(sig)
    assert process.wait() == 128 + sig  # the shell's convention: SIGINT 130, SIGTERM 143

    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith(f"error: stopped by {sig.name} at stage "), lines[0]
    assert "Resume with: iwae " + shlex.join(TRAIN_ARGS) + " output_root=" in lines[0], lines[0]
    assert f"checkpoint saved in {run_dir}" in lines[0]
    assert "Resume with: iwae train " in lines[0]
    status = read_json(run_dir / "status.json")
    assert status["state"] == "interrupted" and f"stopped by {sig.name}" in status["message"]
    position = load_checkpoint(run_dir)["position"]
    assert position["stage"] < 2 and position["passes_done"] < 2

    # the printed command resumes it
    resume = shlex.split(lines[0].split("Resume with: ", 1)[1])
    assert resume[:2] == ["iwae", "train"]
    # the same overrides (the CLI may pin output_root to the absolute path it used)
    assert sorted(a for a in resume[2:] if not a.startswith("output_root=")) == sorted(TRAIN_ARGS[1:])
    assert all(a in (f"output_root={output_root}", f"output_root='{output_root}'")
               for a in resume[2:] if a.startswith("output_root="))
    resumed = run_iwae(iwae_script, resume[1:], cli_env, tmp_path / "resume")
    assert "resuming" in resumed.stdout
    assert_same_run(run_dir, reference_run.run_dir())


def test_sigkill_twice_then_resume_is_exact(
    reference_run: Reference, iwae_cli, iwae_script: Path, cli_env: dict[str, str], output_root: Path,
    tmp_path: Path,
) -> None:
    """SIGKILL in stage 1; resume and SIGKILL again in stage 2; resume: the uninterrupted run, bit for bit."""
    run_dir = output_root / "runs" / RUN
    for attempt, (trigger, delay) in enumerate([(checkpoint_exists, 0.25), (first_epoch_logged, 0.15)]):
        process = background_iwae(iwae_script, TRAIN_ARGS, cli_env, tmp_path / f"attempt{attempt}")

        def this_process_trains(trigger=trigger, process=process) -> bool:
            status = run_dir / "status.json"
            ours = status.exists() and read_json(status).get("pid") == process.popen.pid
            return ours and trigger(run_dir)()

        process.wait_for(this_process_trains, "training started")
        time.sleep(delay)
        assert process.popen.poll() is None, "the run finished before the kill: lengthen the schedule"
        process.popen.kill()
        assert process.wait() == -signal.SIGKILL

        status = read_json(run_dir / "status.json")
        assert status["state"] == "running" and status["pid"] == process.popen.pid
        assert load_checkpoint(run_dir)["position"]["stage"] == attempt  # stage 1, then stage 2
        listing = iwae_cli("runs").stdout
        row = next(line.split() for line in listing.splitlines() if line.split()[0] == RUN)
        assert row[1] == "interrupted", listing  # "running" in status.json, but its process is gone

    resumed = run_iwae(iwae_script, TRAIN_ARGS, cli_env, tmp_path / "resume")
    assert "resuming" in resumed.stdout
    assert_same_run(run_dir, reference_run.run_dir())
    assert iwae_cli("runs").stdout.count(" done ") == 1


def test_killed_while_evaluating_then_rerun_gives_the_same_metrics(
    iwae_script: Path, cli_env: dict[str, str], mnist_data_dir: Path, output_root: Path, tmp_path: Path
) -> None:
    args = ("train", "schedule=smoke", "progress=false", "threads=1", "evaluate=true", "eval.k=500",
            "eval.examples=200")
    reference_env = environment(mnist_data_dir, tmp_path / "ref")
    reference = background_iwae(iwae_script, args, reference_env, tmp_path / "ref-logs")
    run_dir = output_root / "runs" / SMOKE_RUN
    process = background_iwae(iwae_script, args, cli_env, tmp_path / "first")
    # samples.png is written after training, just before the evaluation starts
    process.wait_for(lambda: (run_dir / "samples.png").exists(), "the evaluation")
    time.sleep(0.2)
    assert process.popen.poll() is None, "the evaluation finished before the signal"
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait() != 0
    assert "Traceback" not in process.stderr
    metrics = read_json(run_dir / "metrics.json")
    assert "test_nll" not in metrics, "the evaluation finished before the signal"
    assert read_json(run_dir / "status.json")["state"] == "done"  # the training had finished
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()

    run_iwae(iwae_script, args, cli_env, tmp_path / "again")
    reference.succeed()
    ref_dir = tmp_path / "ref" / "runs" / SMOKE_RUN
    ours, theirs = read_json(run_dir / "metrics.json"), read_json(ref_dir / "metrics.json")
    assert ours["test_nll"] == theirs["test_nll"]
    assert ours["test_nll"]["k"] == 500 and ours["test_nll"]["n"] == 200
    assert ours["active_units"]["counts"] == theirs["active_units"]["counts"]
    assert ours["active_units"]["A_u"] == theirs["active_units"]["A_u"]
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint  # a finished run is not trained again
    assert bound_columns(run_dir) == bound_columns(ref_dir)


def test_interrupted_eval_nll_then_rerun(
    smoke_run: Path, iwae_script: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    reference_dir = tmp_path / "reference-run"
    shutil.copytree(smoke_run, reference_dir)
    args = ("eval-nll", "k=500", "examples=300", "threads=1")
    reference_args = (*args, f"run={reference_dir}", "progress=false")
    reference = background_iwae(iwae_script, reference_args, cli_env, tmp_path / "ref")

    process = background_iwae(iwae_script, (*args, f"run={smoke_run}", "progress=true"), cli_env, tmp_path / "first")
    process.wait_for(lambda: "L_500" in process.stderr, "the progress bar")  # tqdm: the estimate has started
    time.sleep(0.3)
    assert process.popen.poll() is None, "the evaluation finished before the signal"
    process.popen.send_signal(signal.SIGINT)
    assert process.wait() == 130
    last = [line for line in process.stderr.replace("\r", "\n").splitlines() if line.strip()][-1]
    assert last == "error: interrupted", process.stderr
    assert "Traceback" not in process.stderr
    assert "test_nll" not in read_json(smoke_run / "metrics.json")

    again = run_iwae(iwae_script, (*args, f"run={smoke_run}", "progress=false"), cli_env, tmp_path / "again")
    reference.succeed()
    ours, theirs = (read_json(d / "metrics.json")["test_nll"] for d in (smoke_run, reference_dir))
    assert ours == theirs and ours["k"] == 500 and ours["n"] == 300
    # the printed results agree after the run's directory (the log lines before them name the run too)
    assert printed_result(again.stdout) == printed_result(reference.stdout)


def printed_result(stdout: str) -> str:
    """What `iwae eval-nll` printed as its result, after `<run directory>: `."""
    return next(line for line in stdout.splitlines() if ": test NLL = " in line).split(": test NLL = ", 1)[1]
