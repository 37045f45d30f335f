"""A run's log file opens only once its process will work on the run (runs/run_log.py), and a sweep's refused
config is recorded only in a run directory that no other process holds (pipeline/lifecycle.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from iwae_cli.pipeline.lifecycle import record_refusal
from iwae_cli.runs.run_log import held_run_log
from tests.helpers.background import hold_lock, kill_leftovers

log = logging.getLogger("iwae_cli.test")


@pytest.fixture(autouse=True)
def _info_logged(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    yield
    kill_leftovers()


def test_a_log_never_opened_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with held_run_log(run_dir / "train.log"):
        log.info("looked at, not trained")
    assert not run_dir.exists()


def test_what_was_held_goes_into_the_file_first_in_order(tmp_path: Path) -> None:
    path = tmp_path / "run" / "train.log"
    with held_run_log(path) as open_log:
        log.info("resuming at stage 1")
        open_log()
        log.info("stage 1 epoch 1")
    log.info("after the block")
    lines = path.read_text().splitlines()
    assert [line.rsplit(" - ", 1)[1] for line in lines] == ["resuming at stage 1", "stage 1 epoch 1"]
    assert all("[iwae_cli.test][INFO]" in line for line in lines)


def test_a_refusal_is_not_recorded_in_a_run_another_process_holds(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = hold_lock(run_dir, tmp_path / "holder")
    before = sorted(p.name for p in run_dir.iterdir())
    record_refusal(run_dir, "k: 0\n", {"k": 0}, "k must be a whole number >= 1")
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written, nothing raised
    holder.popen.kill()
    holder.wait()
    record_refusal(run_dir, "k: 0\n", {"k": 0}, "k must be a whole number >= 1")
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["state"], status["message"]) == ("failed", "k must be a whole number >= 1")
