"""`iwae runs --remove`: runs chosen with `iwae runs`' filters, listed by a dry run, deleted whole with --yes;
a running run (a live lock owner) refused with one line and exit 1, and a bad filter one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.background import hold_lock, kill_leftovers
from tests.helpers.fake_runs import RUNS, run_name, write_runs


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    kill_leftovers()


@pytest.fixture
def runs(iwae_cli, output_root: Path):
    write_runs(output_root)
    return iwae_cli


def left(output_root: Path) -> list[str]:
    """The run directories still under output_root/runs."""
    runs_root = output_root / "runs"
    return sorted(str(p.parent.relative_to(runs_root)) for p in runs_root.rglob("config.yaml"))


EVERY_RUN = sorted(run_name(o, k, s) for o, k, s, _, _ in RUNS)


def test_without_yes_it_lists_what_would_go_and_deletes_nothing(runs, output_root: Path) -> None:
    result = runs("runs", "--remove", "objective=iwae", "k=50")
    lines = result.stdout.splitlines()
    assert lines[0] == f"would remove 2 runs under {output_root / 'runs'} (state, directory):"
    assert lines[1].split() == ["done", str(output_root / "runs" / run_name("iwae", 50, 0))]
    assert lines[2].split() == ["failed", str(output_root / "runs" / run_name("iwae", 50, 1))]
    assert "--yes" in lines[3] and len(lines) == 4
    assert result.stderr == "" and left(output_root) == EVERY_RUN


def test_yes_deletes_each_run_whole_and_the_folders_it_empties(runs, output_root: Path) -> None:
    (output_root / "runs" / run_name("vae", 5, 0) / ".hydra").mkdir()  # whatever the directory holds goes too
    result = runs("runs", "--remove", "--yes", "k=5", f"output_root={output_root}")
    assert result.stdout.splitlines() == [
        f"removed {output_root / 'runs' / run_name('iwae', 5, 0)} (done)",
        f"removed {output_root / 'runs' / run_name('vae', 5, 0)} (done)",
        f"removed 2 runs under {output_root / 'runs'}",
    ]
    assert left(output_root) == [run_name(o, k, s) for o, k, s in (("iwae", 50, 0), ("iwae", 50, 1), ("vae", 50, 1))]
    # mnist/L1-*-k5 held nothing else: gone; runs/ itself stays
    assert sorted(p.name for p in (output_root / "runs" / "mnist").iterdir()) == ["L1-iwae-k50", "L1-vae-k50"]
    assert "no runs under" in runs("runs", "--remove", "--yes", "k=5").stdout


def test_a_running_run_is_refused_in_one_line_and_the_others_go(runs, output_root: Path, tmp_path: Path) -> None:
    running = output_root / "runs" / run_name("iwae", 50, 0)
    holder = hold_lock(running, tmp_path / "holder")  # as `iwae train` holds the run it trains
    for args in (("--remove",), ("--remove", "--yes")):
        result = runs("runs", *args, "objective=iwae", ok=False)
        assert result.exit_code == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"refused: {running} is being trained by pid {holder.pid} on host "), line
    assert running.is_dir() and json.loads((running / "metrics.json").read_text())["run"]["k"] == 50
    assert left(output_root) == [run_name("iwae", 50, 0), run_name("vae", 5, 0), run_name("vae", 50, 1)]
    assert f"removed 2 runs under {output_root / 'runs'}; 1 refused" in result.stdout

    holder.popen.kill()  # once its process has stopped, the run can go
    holder.wait()
    runs("runs", "--remove", "--yes", "objective=iwae")
    assert left(output_root) == [run_name("vae", 5, 0), run_name("vae", 50, 1)]


def test_a_run_holding_runs_that_stay_is_refused(runs, output_root: Path) -> None:
    """Table 2's second stage lives inside its first stage's directory: deleting the first alone would take it."""
    parent = output_root / "runs" / run_name("vae", 5, 0)
    inner = parent / "switch-iwae-k50"
    inner.mkdir()
    (inner / "config.yaml").write_text("k: 50\n")
    (inner / "metrics.json").write_text(json.dumps({"run": {"objective": "iwae", "k": 50, "seed": 0}}))
    result = runs("runs", "--remove", "--yes", "objective=vae", "k=5", ok=False)
    assert result.exit_code == 1 and result.stderr.splitlines() == [
        f"refused: {parent} holds other runs that would be deleted with it (switch-iwae-k50): remove those first"
    ]
    assert inner.is_dir()
    runs("runs", "--remove", "--yes", "seed=0")  # both chosen: the inner run first, then the one holding it
    assert not parent.exists() and left(output_root) == [run_name("iwae", 50, 1), run_name("vae", 50, 1)]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--remove", "model=iwae"), "error: iwae runs cannot filter by model: filter by state, dataset, "),
        (("--remove", "--yes", "k="), "error: k= needs a value (several: k=a,b)"),
        (("--remove", "iwae"), "error: iwae runs takes key=value arguments"),
        (("--yes", "k=5"), "error: --yes confirms --remove: write iwae runs --remove --yes KEY=VALUE ..."),
    ],
)
def test_a_bad_argument_is_one_line_and_deletes_nothing(runs, output_root: Path, args, message: str) -> None:
    result = runs("runs", *args, ok=False)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(message), result.stderr
    assert left(output_root) == EVERY_RUN
