"""iwae_cli.tasks.requeue without a cluster: inside a (pretend) submitit job, submitit's warning signal stops
training like SIGTERM, and the stop is handed to submitit's handler (here a stand-in) with the runs marked.
tests/slurm runs the same paths on a real SLURM cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from submitit.core.utils import UncompletedJobError

from iwae_cli.core.runtime import stop_on_signals
from iwae_cli.errors import Interrupted, RunError
from iwae_cli.runs.records import write_status
from iwae_cli.tasks.requeue import requeue_when_stopped


class SubmititHandler:
    """Stands in for submitit's SignalHandler.checkpoint_and_try_requeue: requeues (SystemExit) or refuses."""

    def __init__(self, refuse: bool = False):
        self.calls: list[int] = []
        self.refuse = refuse
        self.scontrol_killed = False

    def __call__(self, signum: int, frame=None) -> None:
        self.calls.append(signum)
        if self.refuse:
            raise UncompletedJobError("Job not requeued because: timed-out too many times.")
        if self.scontrol_killed:  # submitit's check_call, when the requeue's SIGTERM reaches scontrol first
            raise subprocess.CalledProcessError(-signal.SIGTERM, ["scontrol", "requeue", "77"])
        raise SystemExit(-1)


@pytest.fixture
def in_submitit_job(monkeypatch: pytest.MonkeyPatch) -> Iterator[SubmititHandler]:
    """SUBMITIT_EXECUTOR set and a stand-in for submitit's SIGUSR2 handler installed, as in a submitit job."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    handler = SubmititHandler()
    previous = signal.signal(signal.SIGUSR2, handler)
    yield handler
    signal.signal(signal.SIGUSR2, previous)


def train_until(sig: int, run_dir: Path) -> None:
    """What a run does when `sig` arrives mid-training: the loop's flag catches it, the run is checkpointed (not
    here) and marked interrupted, and Interrupted names the signal."""
    with stop_on_signals() as stop:
        os.kill(os.getpid(), sig)
        assert stop.signum == sig  # caught by the loop's flag, not by the handler in place before
    write_status(run_dir, "interrupted", f"stopped by {stop.signal_name} at stage 1, epoch 1, step 3")
    raise Interrupted(f"stopped by {stop.signal_name}", stop.signum)


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_warning_checkpoints_then_submitit_requeues(in_submitit_job: SubmititHandler, tmp_path: Path) -> None:
    with pytest.raises(SystemExit), requeue_when_stopped([tmp_path]):
        train_until(signal.SIGUSR2, tmp_path)
    assert in_submitit_job.calls == [signal.SIGUSR2]
    assert (
        state(tmp_path)["state"] == "requeued"
        and "requeued by submitit as job 77" in state(tmp_path)["message"]
    )
    assert signal.getsignal(signal.SIGUSR2) is in_submitit_job  # submitit's handler is back in place


def test_sigterm_ends_the_job_without_a_result(in_submitit_job: SubmititHandler, tmp_path: Path) -> None:
    """SIGTERM (scontrol requeue, a preemption, scancel): checkpointed, then SystemExit, which submitit lets
    through without writing a result, so SLURM's requeue is not reported as a failure."""
    with pytest.raises(SystemExit) as exited, requeue_when_stopped([tmp_path]):
        train_until(signal.SIGTERM, tmp_path)
    assert exited.value.code == 128 + signal.SIGTERM
    assert in_submitit_job.calls == [] and state(tmp_path)["state"] == "interrupted"


def test_scontrol_killed_by_its_own_requeue_ends_the_job_without_a_result(
    in_submitit_job: SubmititHandler, tmp_path: Path
) -> None:
    """SLURM requeued the job, and its SIGTERM killed scontrol before it exited: an exception here would be
    written as the job's result and fail the sweep while the requeued job starts again."""
    in_submitit_job.scontrol_killed = True
    with pytest.raises(SystemExit) as exited, requeue_when_stopped([tmp_path]):
        train_until(signal.SIGUSR2, tmp_path)
    assert exited.value.code == 128 + signal.SIGTERM
    assert in_submitit_job.calls == [signal.SIGUSR2] and state(tmp_path)["state"] == "interrupted"


def test_refused_requeue_is_one_line(in_submitit_job: SubmititHandler, tmp_path: Path) -> None:
    in_submitit_job.refuse = True
    with pytest.raises(
        RunError, match="submitit did not requeue the job: Job not requeued because: timed-out"
    ):
        with requeue_when_stopped([tmp_path]):
            train_until(signal.SIGUSR2, tmp_path)
    assert state(tmp_path)["state"] == "interrupted"


def test_outside_submitit_nothing_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    with pytest.raises(Interrupted), requeue_when_stopped([tmp_path]):
        train_until(signal.SIGTERM, tmp_path)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # SIGUSR2 stops training only in a job
