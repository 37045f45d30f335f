"""Progress bars and log lines share the terminal without overwriting each other: a log line starts on a line of
its own, never glued to the end of a bar, and the bar goes on below it."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from tqdm.auto import tqdm

from iwae_cli.core.runtime import logs_clear_of_bars

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
