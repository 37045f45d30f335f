"""Progress bars and log lines share the terminal without overwriting each other: a log line starts on a line of
its own, never glued to the end of a bar, and the bar goes on below it; where several models run, each line
names the run it is about."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from tqdm.auto import tqdm

from iwae_cli.core.runtime import logs_clear_of_bars
from iwae_cli.runs.log_context import about, runs_named_on_console

BAR_MARK = "step/s"  # in every frame of the training bar


def displayed_lines(output: str) -> list[str]:
    """What a terminal shows of each line: the text after its last carriage return."""
    return [line.split("\r")[-1] for line in output.split("\n")]


def test_a_log_line_written_during_a_bar_starts_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = io.StringIO()  # stdout and stderr both reach the one terminal
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    console, log_file = logging.StreamHandler(sys.stdout), logging.FileHandler(Path("/dev/null"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [console, log_file])
    monkeypatch.setattr(root, "level", logging.INFO)
    with logs_clear_of_bars(), tqdm(total=4, unit="step", file=sys.stderr, mininterval=0) as bar:
        bar.update(2)
        logging.getLogger("iwae_cli.test").info("epoch 1: train bound -100.0")
        bar.update(2)
    assert (console.stream, log_file.stream.name) == (terminal, "/dev/null")  # both as they were
    shown = displayed_lines(terminal.getvalue())
    assert "epoch 1: train bound -100.0" in shown, shown
    assert any(BAR_MARK in line for line in shown[shown.index("epoch 1: train bound -100.0") :]), shown


def test_training_logs_through_hydra_stay_clear_of_the_bar(iwae_cli) -> None:
    # Hydra sets up its console handler only when the job starts: the CLI must redirect that one
    result = iwae_cli("train", "schedule=smoke", "k=5", "progress=true")
    shown = displayed_lines(result.output)
    logged = [line for line in shown if "[INFO] - " in line]
    assert any("train bound" in line for line in logged), result.output
    for line in logged:
        assert line.startswith("[") and BAR_MARK not in line, f"a log line glued to the bar: {line!r}"
    assert any(BAR_MARK in line for line in shown), result.output


def test_console_lines_name_their_run_and_the_runs_own_log_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = io.StringIO()
    console, own_log = logging.StreamHandler(terminal), logging.StreamHandler(io.StringIO())
    for handler in (console, own_log):
        handler.setFormatter(logging.Formatter("[%(levelname)s] - %(message)s"))
    monkeypatch.setattr(logging.getLogger(), "handlers", [console])
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    log = logging.getLogger("iwae_cli.test")
    log.addHandler(own_log)  # stands for a run's train.log: it keeps the plain line
    run_a, run_b = "/out/runs/mnist/L1-vae-k5/smoke-seed0", "/out/runs/omniglot/L2-iwae-k50/smoke-seed1"
    with runs_named_on_console():
        log.info("epoch %d: train bound %.1f", 1, -100.0, extra={"run_dir": run_a})
        with about(Path(run_b)):
            log.info("test NLL 90.0")
        log.info("launching 2 jobs")
    log.info("after the block")
    log.removeHandler(own_log)
    assert terminal.getvalue().splitlines() == [
        "[INFO] - mnist/L1-vae-k5/smoke-seed0: epoch 1: train bound -100.0",
        "[INFO] - omniglot/L2-iwae-k50/smoke-seed1: test NLL 90.0",
        "[INFO] - launching 2 jobs",  # about no run in particular
        "[INFO] - after the block",
    ]
    assert own_log.stream.getvalue().splitlines()[:2] == [
        "[INFO] - epoch 1: train bound -100.0", "[INFO] - test NLL 90.0"
    ]


def test_a_sweep_of_two_models_names_the_run_on_every_training_line(iwae_cli) -> None:
    result = iwae_cli("train", "-m", "schedule=smoke", "model=vae,iwae", "k=5")
    epochs = [line for line in result.output.splitlines() if "train bound" in line]
    assert epochs, result.output
    for line in epochs:
        assert "/L1-vae-k5/smoke-" in line or "/L1-iwae-k5/smoke-" in line, f"a line naming no run: {line!r}"
    assert {"vae" if "/L1-vae-k5/" in line else "iwae" for line in epochs} == {"vae", "iwae"}
