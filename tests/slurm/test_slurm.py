"""`hydra/launcher=submitit_slurm` on a real single-node SLURM cluster (scripts/slurm_cluster.sh): sweeps and
Table 1 through sbatch, and jobs that a time limit, a preemption (`scontrol requeue`) or submitit's warning
signal stops mid-run, requeued and resumed bit for bit.

The time-limit test needs the most wall time (a job of 1 minute requeued until its schedule is done), so its
jobs start with the module and run while the other tests use the cluster's second CPU.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.runs.listing import describe_runs
from tests.helpers.background import Background, kill_leftovers
from tests.helpers.run_checks import assert_same_run, schedule_name, schedule_overrides
from tests.slurm.conftest import Cluster, finish, iwae_process, submitted_jobs

pytestmark = pytest.mark.slurm

# every job on one CPU with one thread: two jobs at a time on the 2-CPU node
SLURM = ("hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1")
QUIET = ("threads=1", "compile=false", "progress=false", "checkpoint_minutes=60")  # no periodic checkpoint
# 4,000 steps at k=50: 50-110 s of training (idle to loaded), more than two 1-minute jobs can hold once SLURM's
# warning (USR2 22 s before the limit, give or take SLURM's 30 s check) and startup are taken off
LONG_SCHEDULE = {"train_examples": 4000, "passes": [10, 10]}
LONG_CELL = ("schedule=smoke", "model=iwae", "k=50", *schedule_overrides(**LONG_SCHEDULE))
LONG_RUN = f"mnist/L1-iwae-k50/{schedule_name('smoke', **LONG_SCHEDULE)}-text-paper-sum-seed0"
TIME_LIMIT = (
    "hydra.launcher.timeout_min=1",
    "hydra.launcher.signal_delay_s=22",
    "hydra.launcher.max_num_timeout=30",
)
# 800 steps at k=5: a few seconds of training, stopped after its first pass
SHORT_SCHEDULE = {"train_examples": 2000, "passes": [4, 4]}
SHORT_CELL = ("schedule=smoke", "model=iwae", "k=5", *schedule_overrides(**SHORT_SCHEDULE))
SHORT_RUN = f"mnist/L1-iwae-k5/{schedule_name('smoke', **SHORT_SCHEDULE)}-text-paper-sum-seed0"
GROUP = ("schedule=smoke", "model=vae,iwae", "k=5", *schedule_overrides(**SHORT_SCHEDULE))
GROUP_RUNS = tuple(
    f"mnist/L1-{model}-k5/{schedule_name('smoke', **SHORT_SCHEDULE)}-text-paper-sum-seed0"
    for model in ("vae", "iwae")
)

STOP = re.compile(r"stopped by (SIG\w+) at stage (\d+), epoch (\d+), step (\d+)")
RESUME = re.compile(r"resuming (\S+) at stage (\d+), epoch (\d+), step (\d+)")


@dataclass
class Job:
    """An `iwae` command submitting to the cluster, with its output root."""

    process: Background
    root: Path
    sweep: str = "runs"  # where the sweep's .submitit folder is (groups/ for group=true)
    states: dict[str, set[str]] = field(default_factory=dict)

    def run_dir(self, name: str) -> Path:
        return self.root / "runs" / name

    def job_id(self) -> str:
        """The SLURM job, once submitted."""
        deadline = time.monotonic() + 120
        while not (jobs := submitted_jobs(self.root / self.sweep)):
            assert self.process.popen.poll() is None, self.process.stderr[-3000:]
            assert time.monotonic() < deadline, "no job submitted"
            time.sleep(0.1)
        return jobs[0]

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120
        while not ready():
            assert self.process.popen.poll() is None, f"ended before {what}: {self.process.stderr[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def watch_states(self, *runs: str) -> Callable[[], None]:
        """A watch for `finish`: notes every state each run's status.json shows."""

        def watch() -> None:
            for name in runs:
                try:
                    state = json.loads((self.run_dir(name) / "status.json").read_text())["state"]
                except (OSError, ValueError, KeyError):
                    continue
                self.states.setdefault(name, set()).add(state)

        return watch

    def note_states_meanwhile(self, *runs: str) -> None:
        """watch_states in a thread until the command ends: for a job that runs on while other tests do."""

        def note() -> None:
            watch = self.watch_states(*runs)
            while self.process.popen.poll() is None:
                watch()
                time.sleep(0.2)

        threading.Thread(target=note, daemon=True).start()

    def succeed(self, watch: Callable[[], None] | None = None) -> None:
        code = finish(self.process, "the sweep", watch)
        assert code == 0, f"exit {code}\n{self.process.stdout[-3000:]}\n{self.process.stderr[-3000:]}"
        assert "Traceback" not in self.process.stderr
        assert "sacct" not in self.process.stderr  # accounting is off, and submitit does not complain


def submit(cluster: Cluster, mnist_data_dir: Path, root: Path, *args: str, sweep: str = "runs") -> Job:
    """`iwae ARGS` in the background, output under root, SLURM's commands pointed at the cluster."""
    return Job(
        iwae_process(list(args), cluster.env(mnist_data_dir, root / "out"), root / "logs"),
        root / "out",
        sweep,
    )


def cancel_jobs(cluster: Cluster, roots: list[Path]) -> None:
    """Cancel what a failed test left on the cluster."""
    for root in roots:
        for sweep in ("runs", "groups"):
            for job in submitted_jobs(root / sweep):
                cluster.run("scancel", job)


def stops_resumed_in_place(train_log: str, signal_name: str) -> int:
    """How many times the run stopped on signal_name; fails unless each stop is followed by a resume at the very
    step it stopped after (no finished step lost)."""
    stops, pending = 0, None
    for line in train_log.splitlines():
        if stop := STOP.search(line):
            assert stop.group(1) == signal_name, line
            pending, stops = stop.groups()[1:], stops + 1
        elif (resume := RESUME.search(line)) and pending is not None:
            assert resume.groups()[1:] == pending, (
                f"stopped after {pending}, resumed at {resume.groups()[1:]}"
            )
            pending = None
    assert pending is None, "a stop was never resumed"
    return stops


def ran_to_the_end(root: Path, *runs: str) -> None:
    """`iwae runs` lists each run as done."""
    table = describe_runs(root)
    for name in runs:
        assert re.search(rf"{re.escape(name)}\s+done\b", table), table


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture(scope="module")
def cleanup(slurm_cluster: Cluster) -> Iterator[list[Path]]:
    """Output roots whose SLURM jobs are cancelled at the end of the module (all done, unless a test failed)."""
    roots: list[Path] = []
    yield roots
    cancel_jobs(slurm_cluster, roots)


@pytest.fixture(scope="module")
def short_reference(mnist_data_dir: Path, tmp_path_factory, slurm_cluster: Cluster) -> Callable[[], Path]:
    """SHORT_CELL trained uninterrupted, without SLURM: started on first use, awaited on each call."""
    root = tmp_path_factory.mktemp("short-reference")
    env = slurm_cluster.env(mnist_data_dir, root / "out")
    process = iwae_process(["train", *SHORT_CELL, *QUIET], env, root, niced=True)
    process.popen.keep = True

    def run_dir() -> Path:
        assert finish(process, "the reference run") == 0, process.stderr[-3000:]
        return root / "out" / "runs" / SHORT_RUN

    return run_dir


@pytest.fixture(scope="module")
def time_limited(
    mnist_data_dir: Path, tmp_path_factory, slurm_cluster: Cluster, cleanup
) -> tuple[Job, Background]:
    """LONG_CELL through SLURM with a 1-minute limit, and the same cell uninterrupted without SLURM."""
    root = tmp_path_factory.mktemp("time-limit")
    cleanup.append(root / "out")
    job = submit(slurm_cluster, mnist_data_dir, root, "train", "-m", *LONG_CELL, *QUIET, *SLURM, *TIME_LIMIT)
    reference = iwae_process(
        ["train", *LONG_CELL, *QUIET],
        slurm_cluster.env(mnist_data_dir, root / "ref"),
        root / "ref-logs",
        niced=True,
    )
    job.process.popen.keep = reference.popen.keep = True  # they run on across the other tests
    job.note_states_meanwhile(LONG_RUN)
    yield job, reference
    for process in (job.process, reference):
        if process.popen.poll() is None:  # the test failed before they ended
            process.popen.kill()
            process.popen.wait()


@pytest.fixture(scope="module", autouse=True)
def _longest_first(request: pytest.FixtureRequest) -> None:
    """Start the time-limit test's jobs before the other tests when it is selected, so that they overlap."""
    if any(item.originalname == "test_time_limit_requeues_until_done" for item in request.session.items):
        request.getfixturevalue("time_limited")


def test_sweep_through_sbatch(slurm_cluster: Cluster, mnist_data_dir: Path, tmp_path: Path, cleanup) -> None:
    cleanup.append(tmp_path / "out")
    job = submit(
        slurm_cluster,
        mnist_data_dir,
        tmp_path,
        "train",
        "-m",
        "schedule=smoke",
        "model=vae",
        "k=1,5",
        *QUIET,
        *SLURM,
        "hydra.launcher.partition=debug",
    )
    job.succeed()
    assert len(submitted_jobs(job.root / "runs")) == 2  # one array job's two tasks
    ran_to_the_end(
        job.root, "mnist/L1-vae-k1/smoke-text-paper-sum-seed0", "mnist/L1-vae-k5/smoke-text-paper-sum-seed0"
    )


def test_preempted_job_resumes_in_place(
    slurm_cluster: Cluster, mnist_data_dir: Path, tmp_path: Path, short_reference, cleanup
) -> None:
    """`scontrol requeue` mid-run (what a preemption with PreemptMode=REQUEUE does): SIGTERM, a checkpoint at
    the step boundary, status interrupted, SLURM starts the job again and it resumes there."""
    cleanup.append(tmp_path / "out")
    job = submit(slurm_cluster, mnist_data_dir, tmp_path, "train", "-m", *SHORT_CELL, *QUIET, *SLURM)
    run_dir = job.run_dir(SHORT_RUN)
    job.wait_for(lambda: (run_dir / "train_log.csv").exists(), "the first pass")
    slurm_cluster.run("scontrol", "requeue", job.job_id())
    job.succeed(job.watch_states(SHORT_RUN))
    assert slurm_cluster.restarts(job.job_id()) == 1
    assert "interrupted" in job.states[SHORT_RUN]
    assert stops_resumed_in_place((run_dir / "train.log").read_text(), "SIGTERM") == 1
    assert_same_run(run_dir, short_reference(), passes=8)
    ran_to_the_end(job.root, SHORT_RUN)


def test_group_requeued_resumes_as_a_group(
    slurm_cluster: Cluster, mnist_data_dir: Path, tmp_path: Path, cleanup
) -> None:
    """submitit's warning (USR2, as `signal_delay_s` before a time limit) mid-run to a lockstep group's job:
    every member checkpointed and marked requeued, the group requeued by submitit and resumed as a group."""
    cleanup.append(tmp_path / "out")
    reference = iwae_process(
        ["train", "-m", *GROUP, *QUIET, "group=true"],
        slurm_cluster.env(mnist_data_dir, tmp_path / "ref"),
        tmp_path / "ref-logs",
        niced=True,
    )
    job = submit(
        slurm_cluster,
        mnist_data_dir,
        tmp_path,
        "train",
        "-m",
        *GROUP,
        *QUIET,
        "group=true",
        *SLURM,
        "hydra.launcher.max_num_timeout=2",
        sweep="groups",
    )
    first = job.run_dir(GROUP_RUNS[0])
    job.wait_for(lambda: (first / "train_log.csv").exists(), "the group's first pass")
    slurm_cluster.run("scancel", "--signal=USR2", job.job_id())
    job.succeed(job.watch_states(*GROUP_RUNS))
    assert finish(reference, "the reference group") == 0, reference.stderr[-3000:]
    assert slurm_cluster.restarts(job.job_id()) == 1
    for name in GROUP_RUNS:
        assert "requeued" in job.states[name], job.states
        log = (job.run_dir(name) / "train.log").read_text()
        assert stops_resumed_in_place(log, "SIGUSR2") == 1
        assert log.count("training 2 runs in lockstep") == 2  # before and after the requeue
        assert_same_run(job.run_dir(name), tmp_path / "ref" / "runs" / name, passes=8)
    ran_to_the_end(job.root, *GROUP_RUNS)


def test_not_requeued_past_max_num_timeout(
    slurm_cluster: Cluster, mnist_data_dir: Path, tmp_path: Path, short_reference, cleanup
) -> None:
    """With submitit's default max_num_timeout=0 the warning still checkpoints; the job then fails in one line
    and the same command without SLURM finishes the run. (submitit counts a warning as a time-out, not a
    preemption, once the job has run min(80%, all but 10 minutes) of its limit: at once for a 5-minute one.)"""
    cleanup.append(tmp_path / "out")
    job = submit(
        slurm_cluster,
        mnist_data_dir,
        tmp_path,
        "train",
        "-m",
        *SHORT_CELL,
        *QUIET,
        *SLURM,
        "hydra.launcher.timeout_min=5",
    )
    run_dir = job.run_dir(SHORT_RUN)
    job.wait_for(lambda: (run_dir / "train_log.csv").exists(), "the first pass")
    slurm_cluster.run("scancel", "--signal=USR2", job.job_id())
    assert finish(job.process, "the sweep") != 0
    errors = [line for line in job.process.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "submitit did not requeue the job" in errors[0], job.process.stderr
    assert "Traceback" not in job.process.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted" and (run_dir / CHECKPOINT_NAME).exists()
    env = slurm_cluster.env(mnist_data_dir, job.root)
    resumed = iwae_process(["train", *SHORT_CELL, *QUIET], env, tmp_path / "resume")
    assert finish(resumed, "the resumed run") == 0, resumed.stderr[-3000:]
    assert stops_resumed_in_place((run_dir / "train.log").read_text(), "SIGUSR2") == 1
    assert_same_run(run_dir, short_reference(), passes=8)


def test_table1_through_slurm(slurm_cluster: Cluster, mnist_data_dir: Path, tmp_path: Path, cleanup) -> None:
    cleanup.append(tmp_path / "out")
    job = submit(
        slurm_cluster,
        mnist_data_dir,
        tmp_path,
        "table1",
        "profile=smoke",
        "datasets=[mnist]",
        "depths=[1]",
        "ks=[1,5]",
        "hydra/launcher=submitit_slurm",
    )
    job.succeed()
    table = pd.read_csv(job.root / "tables" / "smoke" / "table1.csv")
    assert sorted(zip(table.objective, table.k, strict=True)) == [
        ("iwae", 1),
        ("iwae", 5),
        ("vae", 1),
        ("vae", 5),
    ]
    assert table.nll.notna().all() and table.status.str.startswith("done").all()
    assert "| mnist | 1 | 5 |" in (job.root / "tables" / "smoke" / "table1.md").read_text()
    assert len(submitted_jobs(job.root / "runs")) == 3  # VAE k=1 (IWAE's k=1 row too), VAE and IWAE k=5


def test_time_limit_requeues_until_done(slurm_cluster: Cluster, time_limited: tuple[Job, Background]) -> None:
    """A 1-minute job whose schedule needs several: each USR2 stops training at a step boundary with a
    checkpoint, submitit requeues the job, and the run ends identical to the uninterrupted one."""
    job, reference = time_limited
    run_dir = job.run_dir(LONG_RUN)
    job.succeed()
    assert finish(reference, "the reference run") == 0, reference.stderr[-3000:]
    assert slurm_cluster.restarts(job.job_id()) >= 2
    log = (run_dir / "train.log").read_text()
    assert stops_resumed_in_place(log, "SIGUSR2") >= 1
    # each restart was asked for by one incarnation (whose scontrol may have died of the requeue's SIGTERM), and
    # one that was working on the run says so in its train.log; one signalled while it was still starting up
    # (before iwae_cli.tasks.requeue takes the signal: possible on loaded cores) is requeued by submitit's own
    # handler, and writes nothing into a run it never touched
    requeues = log.count("Requeued job") + log.count("scontrol requeue was stopped by SIGTERM")
    restarts = slurm_cluster.restarts(job.job_id())
    assert restarts - 1 <= requeues <= restarts
    assert "is being trained by pid" not in log  # no incarnation was refused by its predecessor's lock
    assert "requeued" in job.states[LONG_RUN]
    assert_same_run(run_dir, job.root.parent / "ref" / "runs" / LONG_RUN, passes=20)
    ran_to_the_end(job.root, LONG_RUN)
