"""One live process per run directory (issue 14): real `iwae train` processes racing for one run, and SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from iwae_cli.errors import RunError
from iwae_cli.runs.lock import LOCK_NAME, OWNER_NAME, hold_run_dir, lock_owner
from iwae_cli.runs.records import run_state_with_lock
from tests.helpers.background import TIMEOUT, Background, hold_lock, kill_leftovers

# 50 passes over 400 images, a checkpoint every ~0.3 s: runs until the test stops it
LONG_ARGS = ("train", "schedule=smoke", "schedule.passes=[50]", "schedule.learning_rates=[1e-3]",
             "checkpoint_minutes=0.005", "compile=false", "progress=false", "threads=1")
# 2 x 200 steps, a checkpoint every ~0.2 s: killed mid-way, then resumed to the end in a few seconds
SHORT_ARGS = ("train", "schedule=smoke", "schedule.train_examples=4000", "schedule.passes=[1,1]",
              "schedule.learning_rates=[1e-3,5e-4]", "checkpoint_minutes=0.0035", "compile=false",
              "progress=false", "threads=1")
# Table 1's cell (mnist, 1 layer, iwae, k=5) as `table1 profile=quick` trains it: the quick schedule as shipped
# (a schedule changed on the command line is no table's cell), whose first pass alone is 3,000 steps
TABLE_CELL_ARGS = ("train", "schedule=quick", "model=iwae", "k=5", "checkpoint_minutes=0.005", "compile=false",
                   "progress=false", "threads=1")
TABLE_ARGS = ("table1", "profile=quick", "datasets=[mnist]", "depths=[1]", "ks=[5]", "objectives=[iwae]",
              "n_jobs=1")
# The files a training run has written once under way (a refused process must touch none, nor add any)
RUN_FILES = ("checkpoint.pt", "status.json", "config.yaml", "train_log.csv", "metrics.json", "train.log",
             OWNER_NAME, LOCK_NAME)


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    kill_leftovers()


def iwae(script: Path, args: tuple[str, ...], env: dict[str, str], logs: Path) -> Background:
    return Background([str(script), *args], env, logs)


def the_run_dir(output_root: Path) -> Path:
    """The one run directory a process has locked under output_root (its name depends on the configuration's
    naming scheme, which this test does not pin), or a path that does not exist yet."""
    locked = sorted(p.parent for p in (output_root / "runs").rglob(LOCK_NAME)) if output_root.exists() else []
    assert len(locked) <= 1, locked
    return locked[0] if locked else output_root / "no-run-yet"


def owner_record(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / OWNER_NAME).read_text())
    except (OSError, ValueError):
        return {}


def owned_by(run_dir: Path, process: Background):
    return lambda: owner_record(run_dir).get("pid") == process.pid


def snapshot(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under run_dir (hidden ones too): its mtime and bytes."""
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.rglob("*")
            if p.is_file()}


def training_under_way(output_root: Path, process: Background):
    """Owned by process, with a checkpoint and a logged epoch of its own: every file a refused run could spoil."""
    def check() -> bool:
        run_dir = the_run_dir(output_root)
        status = run_dir / "status.json"
        ours = status.exists() and json.loads(status.read_text()).get("pid") == process.pid
        return ours and owned_by(run_dir, process)() and all((run_dir / n).exists() for n in RUN_FILES)

    return check


# ---------------------------------------------------------------------------------------------------------


def test_second_train_on_a_locked_run_is_refused_and_touches_nothing(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    first = iwae(iwae_script, LONG_ARGS, cli_env, tmp_path / "first")
    first.wait_for(training_under_way(output_root, first), "training under way")
    run_dir = the_run_dir(output_root)
    # Freeze the owner so its own writes cannot change the files; it still holds the lock
    first.popen.send_signal(signal.SIGSTOP)
    try:
        before = snapshot(run_dir)
        owner = lock_owner(run_dir)
        assert owner is not None and owner["pid"] == first.pid and owner["host"] == socket.gethostname()
        assert run_state_with_lock(run_dir) == "running"

        second = iwae(iwae_script, LONG_ARGS, cli_env, tmp_path / "second")
        assert second.wait() != 0
        assert "Traceback" not in second.stdout + second.stderr
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, second.stderr
        assert errors[0].startswith(f"error: {run_dir} is being trained by pid {first.pid} on host "), errors[0]
        assert f"kill {first.pid}" in errors[0] and "wait for it to finish" in errors[0]
        assert snapshot(run_dir) == before  # not one file added, nor a byte or mtime changed (train.log too)
    finally:
        first.popen.send_signal(signal.SIGCONT)

    first.popen.send_signal(signal.SIGTERM)
    assert first.wait() == 143, first.stderr  # the owner was unharmed: it checkpoints and stops cleanly
    assert lock_owner(run_dir) is None
    assert not (run_dir / OWNER_NAME).exists()  # a clean exit leaves no owner record behind
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"


def test_lock_of_a_sigkilled_run_is_taken_over_and_the_run_resumes(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    first = iwae(iwae_script, SHORT_ARGS, cli_env, tmp_path / "first")

    def checkpointed() -> bool:
        run_dir = the_run_dir(output_root)
        return owned_by(run_dir, first)() and (run_dir / "checkpoint.pt").exists()

    first.wait_for(checkpointed, "a checkpoint")
    run_dir = the_run_dir(output_root)
    assert first.popen.poll() is None, "the run finished before the kill: lengthen the schedule"
    first.popen.kill()
    assert first.wait() == -signal.SIGKILL

    # the dead owner's record is still there, but the kernel has dropped its lock
    assert owner_record(run_dir)["pid"] == first.pid
    assert lock_owner(run_dir) is None
    assert run_state_with_lock(run_dir) == "interrupted"

    again = iwae(iwae_script, SHORT_ARGS, cli_env, tmp_path / "again")
    assert again.wait() == 0, f"{again.stdout[-3000:]}\n{again.stderr[-3000:]}"
    assert "Traceback" not in again.stderr
    assert "resuming" in again.stdout
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done" and status["pid"] == again.pid
    assert not (run_dir / OWNER_NAME).exists()
    assert lock_owner(run_dir) is None and run_state_with_lock(run_dir) == "done"


def test_lock_owner_names_a_live_holder_and_forgets_a_dead_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert lock_owner(run_dir) is None and lock_owner(tmp_path / "missing") is None
    assert not (run_dir / LOCK_NAME).exists()  # asking creates nothing

    holder = hold_lock(run_dir, tmp_path / "holder")
    owner = lock_owner(run_dir)
    assert owner is not None
    assert owner["pid"] == holder.pid and owner["host"] == socket.gethostname()
    assert owner["since"][:4].isdigit() and "T" in owner["since"]  # ISO 8601
    with pytest.raises(RunError) as refused, hold_run_dir(run_dir):
        pass
    assert f"pid {holder.pid}" in str(refused.value)

    holder.popen.kill()
    holder.wait()
    assert owner_record(run_dir)["pid"] == holder.pid  # stale: a SIGKILL cannot remove it
    assert lock_owner(run_dir) is None
    with hold_run_dir(run_dir):  # taken over at once
        assert lock_owner(run_dir)["pid"] == os.getpid()
        with pytest.raises(RunError), hold_run_dir(run_dir):  # taken once: a second hold is refused,
            pass  # from this process too
        assert owner_record(run_dir)["pid"] == os.getpid()
    assert lock_owner(run_dir) is None and not (run_dir / OWNER_NAME).exists()


def test_a_table_reports_a_cell_trained_elsewhere_instead_of_training_it_twice(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    """`iwae train` of one Table 1 cell is running; `iwae table1` of that cell leaves it alone and says so."""
    first = iwae(iwae_script, TABLE_CELL_ARGS, cli_env, tmp_path / "first")
    first.wait_for(training_under_way(output_root, first), "training under way")
    run_dir = the_run_dir(output_root)
    checkpoint = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    first.popen.send_signal(signal.SIGSTOP)  # it keeps its lock, and its files stay as they are
    try:
        table = [sys.executable, "-m", "iwae_cli", *TABLE_ARGS]
        result = subprocess.run(table, env=cli_env, capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 5, result.stderr[-2000:]  # its only cell has no numbers yet
        rows = (output_root / "tables" / "quick" / "table1.csv").read_text()
        assert f"running elsewhere (pid {first.pid} on {socket.gethostname()}" in rows
        assert (run_dir / "checkpoint.pt").stat().st_mtime_ns == checkpoint  # not trained twice
    finally:
        first.popen.send_signal(signal.SIGCONT)
        first.popen.send_signal(signal.SIGTERM)
    assert first.wait() == 143  # 128 + SIGTERM
