"""Training inside a submitit job (hydra/launcher=submitit_slurm or submitit_local): a time limit or a preemption
costs no finished step, and submitit's own handler requeues the job.

submitit warns a job with its signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL names another) `signal_delay_s`
before the time limit, and at a preemption where the cluster sends it. Its handler asks the pickled callable
(hydra-submitit-launcher's launcher, whose `checkpoint` resubmits the same job) for a resubmission, runs
`scontrol requeue` and exits, from wherever the signal landed: in the middle of a step, all work since the last
periodic checkpoint was lost. So while a run trains, the warning only raises the loop's stop flag
(core.runtime.also_stop_on); the loop finishes its step, writes its checkpoint and raises Interrupted; here the
runs are marked `requeued` and submitit's handler, chained to now, does what it always does. The requeued job
resumes each run from its checkpoint: the same step, bit for bit. Where submitit refuses (max_num_timeout
used up), the job fails with one line and the checkpoints stay.

SIGTERM is SLURM's last word before SIGKILL (`scontrol requeue`, a preemption, scancel, the hard time limit);
submitit ignores it, so that the job runs on to its warning or its end. Training stops on it too and writes its
checkpoint; then the job exits without a result, as submitit's handler does: SLURM requeues the job when that
is what the SIGTERM announced, and submitit reports it otherwise (cancelled, timed out).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from iwae_cli.core.runtime import also_stop_on
from iwae_cli.errors import Interrupted, RunError, first_line
from iwae_cli.runs.records import run_state, write_status
from iwae_cli.runs.run_log import LOG_NAME, run_log_handler

log = logging.getLogger(__name__)


def submitit_warning() -> int | None:
    """The signal submitit warns this job with, or None outside a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):  # set by submitit in every job it starts
        return None
    from submitit import JobEnvironment  # a submitit job has submitit (the `launchers` extra)

    return signal.Signals["SIG" + JobEnvironment.USR_SIG]


@contextmanager
def requeue_when_stopped(run_dirs: Sequence[Path]) -> Iterator[None]:
    """Around the training of run_dirs (their locks held): outside a submitit job nothing changes; inside one,
    submitit's warning stops training at a step boundary like SIGTERM, and an Interrupted from either ends the
    job as submitit would, its checkpoints written (see the module's docstring)."""
    warning = submitit_warning()
    if warning is None:
        yield
        return
    with also_stop_on(warning):
        try:
            yield
        except Interrupted as e:
            with run_logs(run_dirs):  # what becomes of the job belongs to its runs' train.log too
                if e.signum == warning:
                    _hand_to_submitit(e, warning, run_dirs)
                if e.signum == signal.SIGTERM:
                    log.warning("%s; the job ends here without a result (SLURM requeues it if that is why)", e)
                    sys.exit(128 + signal.SIGTERM)
            raise


@contextmanager
def run_logs(run_dirs: Sequence[Path]) -> Iterator[None]:
    """Each run's train.log takes what is logged within the block (the runs' lifecycle has closed it): no other
    process trains these runs until this job has ended, requeued or not."""
    handlers = [run_log_handler(run_dir / LOG_NAME) for run_dir in run_dirs]
    try:
        yield
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _hand_to_submitit(stopped: Interrupted, warning: int, run_dirs: Sequence[Path]) -> None:
    """Call submitit's handler for `warning` (its SignalHandler.checkpoint_and_try_requeue, restored once the
    loop let go of the signal): it resubmits the job and exits (SystemExit, let through once the runs are marked
    requeued; also when the requeue's SIGTERM killed scontrol first), or refuses (RunError). Returns where there
    is no handler to call, or where it did neither (a task of rank > 0, which submitit never requeues)."""
    from submitit import JobEnvironment
    from submitit.core.utils import UncompletedJobError

    handler = signal.getsignal(warning)
    if not callable(handler):
        return
    log.warning("%s; handing the job to submitit to requeue it", stopped)
    try:
        handler(warning, None)
    except SystemExit:
        job = JobEnvironment().job_id
        for run_dir in run_dirs:
            if run_state(run_dir) == "interrupted":
                write_status(
                    run_dir, "requeued", f"requeued by submitit as job {job}, which resumes it; {stopped}"
                )
        raise
    except subprocess.CalledProcessError as e:
        if e.returncode != -signal.SIGTERM:
            raise
        # `scontrol requeue` can be killed by its own request: the requeue sends SIGTERM to every process of the
        # job, scontrol included, sometimes before it has exited. End as on SLURM's SIGTERM, without a result:
        # a requeued job starts again, and submitit reports one that was not (a hard time limit) as it ended.
        log.warning("%s; scontrol requeue was stopped by SIGTERM: the job ends here without a result", stopped)
        sys.exit(128 + signal.SIGTERM)
    except UncompletedJobError as refused:
        raise RunError(
            f"{stopped}; submitit did not requeue the job: {first_line(refused)} (hydra.launcher.max_num_timeout "
            "says how many time-outs it requeues)"
        ) from None
