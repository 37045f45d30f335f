"""Every stored result names the checkpoint and environment it came from: a real run interrupted, evaluated only
with unfinished=true and labelled so, resumed (its result then stale), evaluated again by evaluate=true; a run
another process trains is refused; split=valid without a holdout is refused; results of older code still read."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from iwae_cli import __version__
from iwae_cli.core.activity import recorded_matches
from iwae_cli.core.provenance import checkpoint_record, environment, made_from, result_note
from iwae_cli.reports.tables.results import cell_summary, evaluated
from iwae_cli.reports.tables.table1 import table1_markdown, table1_row
from iwae_cli.runs.checkpoint import load_checkpoint
from iwae_cli.runs.records import read_json
from tests.conftest import SMOKE_RUN
from tests.helpers.background import hold_lock, kill_leftovers
from tests.helpers.run_checks import background_iwae, run_iwae, schedule_name, schedule_overrides

# 2 x 200 steps with frequent checkpoints: long enough to stop after the first pass (as tests/training/test_resume)
SCHEDULE = {"train_examples": 4000, "passes": [1, 1], "learning_rates": [1e-3, 5e-4]}
TRAIN_ARGS = ("train", "schedule=smoke", *schedule_overrides(**SCHEDULE), "checkpoint_minutes=0.0035",
              "progress=false", "threads=1")
RUN = f"mnist/L1-iwae-k5/{schedule_name('smoke', **SCHEDULE)}-text-paper-sum-seed0"
EVAL = ("k=3", "examples=20", "progress=false", "threads=1")


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    kill_leftovers()


def listed_row(iwae_cli, name: str) -> str:
    """The line `iwae runs` prints for the run `name`."""
    (row,) = [line for line in iwae_cli("runs").stdout.splitlines() if line.split()[0] == name]
    return row


# ------------------------------------------------------------------------------------------------ the records


def test_environment_names_the_code_torch_device_and_threads() -> None:
    env = environment(torch.device("cpu"))
    assert env["iwae"] == __version__ and env["torch"] == str(torch.__version__) and type(env["torch"]) is str
    assert env["device"] == "cpu" and env["threads"] == torch.get_num_threads()
    assert env["commit"] is None or len(env["commit"]) == 40  # a git checkout's HEAD, else unknown
    assert made_from(3, False, "cpu")["checkpoint"] == {"passes": 3, "finished": False}


@pytest.mark.parametrize(
    "made, passes, finished, note",
    [
        ({"passes": 10, "finished": True}, 10, True, ""),
        ({"passes": 3, "finished": False}, 10, True, "stale, passes 3"),
        ({"passes": 10, "finished": False}, 10, True, "stale, passes 10"),  # evaluated just before it finished
        ({"passes": 3, "finished": False}, 3, False, "unfinished, passes 3"),
        (None, 10, True, "passes ?"),  # made by older code
    ],
)
def test_result_note(made, passes, finished, note) -> None:
    entry = {"nll": 90.0} if made is None else {"nll": 90.0, "checkpoint": made}
    assert result_note(entry, passes, finished) == note


def test_a_result_of_another_checkpoint_does_not_match() -> None:
    wanted = {"k": 5, "checkpoint": checkpoint_record(10, True)}
    assert recorded_matches({"k": 5, "checkpoint": {"passes": 10, "finished": True}}, wanted)
    assert not recorded_matches({"k": 5, "checkpoint": {"passes": 3, "finished": False}}, wanted)
    assert not recorded_matches({"k": 5, "checkpoint": {"passes": 10, "finished": False}}, wanted)
    assert recorded_matches({"k": 5}, wanted)  # older code recorded no checkpoint: taken as it is
    assert not recorded_matches({"k": 50}, wanted)


# ---------------------------------------------------------------------------------------- a real run, end to end


def test_interrupted_run_is_evaluated_only_when_asked_labelled_then_stale_then_evaluated_again(
    iwae_cli, iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    run_dir = output_root / "runs" / RUN
    process = background_iwae(iwae_script, TRAIN_ARGS, cli_env, tmp_path / "first")
    process.wait_for(lambda: (run_dir / "train_log.csv").exists(), "the first pass")
    process.wait_for(lambda: load_checkpoint(run_dir)["position"]["passes_done"] == 1, "a checkpoint after it")
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait() == 128 + signal.SIGTERM
    assert read_json(run_dir / "status.json")["state"] == "interrupted"

    refused = iwae_cli("eval-nll", f"run={RUN}", *EVAL, ok=False)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"error: {run_dir} has not finished training (state: interrupted); resume it with `iwae train` (same "
        "overrides), or pass unfinished=true to evaluate its last checkpoint (recorded and shown as unfinished)"
    ]
    assert "test_nll" not in read_json(run_dir / "metrics.json")

    result = iwae_cli("eval-nll", f"run={RUN}", *EVAL, "unfinished=true")
    assert "model after 1 passes (unfinished run: not the finished model's number)" in result.stdout
    entry = read_json(run_dir / "metrics.json")["test_nll"]
    assert entry["checkpoint"] == {"passes": 1, "finished": False}
    assert entry["k"] == 3 and entry["n"] == 20 and entry["split"] == "test"
    assert entry["environment"]["device"] == "cpu" and entry["environment"]["threads"] == 1
    units = iwae_cli("active-units", f"run={RUN}", "examples=50", "posterior_samples=3", "unfinished=true")
    assert "model after 1 passes (unfinished run" in units.stdout
    row = listed_row(iwae_cli, RUN)
    assert "interrupted" in row and "@k3 n=20" in row and "nll+units: unfinished, passes 1" in row
    assert not evaluated(run_dir)
    assert table_row(run_dir)["status"].endswith("(its test NLL: unfinished, passes 1)")

    run_iwae(iwae_script, TRAIN_ARGS, cli_env, tmp_path / "resume")  # finishes, without evaluating
    row = listed_row(iwae_cli, RUN)
    assert " done " in row and "nll+units: stale, passes 1" in row
    assert not evaluated(run_dir)  # a table never shows the stale number as the finished model's
    stale = "done: test NLL stale, passes 1 (not the finished model's); evaluate=true evaluates it again"
    row = table_row(run_dir)
    assert row["status"] == stale and "nll" not in row  # labelled in its cell, its number not shown

    iwae_cli(*TRAIN_ARGS, "evaluate=true", "eval.k=3", "eval.examples=20", "active_units.examples=50",
             "active_units.posterior_samples=3")
    metrics = read_json(run_dir / "metrics.json")
    for key in ("test_nll", "active_units", "active_units_expected"):
        assert metrics[key]["checkpoint"] == {"passes": 2, "finished": True}, key
    assert metrics["train"]["checkpoint"] == {"passes": 2, "finished": True}  # the final bounds' model
    assert metrics["train"]["environment"]["torch"] == str(torch.__version__)
    row = listed_row(iwae_cli, RUN)
    assert "stale" not in row and "unfinished" not in row and "passes ?" not in row
    assert evaluated(run_dir)
    summary = cell_summary([run_dir])
    assert summary["nll"] == round(metrics["test_nll"]["nll"], 3)
    assert (summary["eval_k"], summary["eval_n"], summary["eval_split"], summary["eval_passes"]) == (3, 20, "test", "2")
    assert summary["eval_device"] == "cpu" and summary["eval_torch"] == str(torch.__version__)
    assert summary["eval_iwae"] == __version__ and summary["units"] == metrics["active_units"]["label"]
    row = table_row(run_dir)
    assert row["status"] == "done" and row["eval_passes"] == "2"
    markdown = table1_markdown(pd.DataFrame([row]), [], "# Table 1")
    assert "Evaluated with k = 3 on n = 20 test images, from each run's finished checkpoint (passes 2; " in markdown
    assert f"torch {torch.__version__}, device cpu, threads 1." in markdown


def table_row(run_dir: Path) -> dict:
    """The run's Table 1 cell (one seed)."""
    return table1_row(("mnist", 1, 5, "iwae"), [run_dir], None, schedule="smoke", protocol="text", seeds=1,
                      shared=False)


def test_a_run_being_trained_is_refused(iwae_cli, smoke_run: Path, tmp_path: Path) -> None:
    holder = hold_lock(smoke_run, tmp_path / "holder")
    for command in (("eval-nll", *EVAL), ("active-units", "examples=20"), ("grad-snr", "draws=2", "ks=[1]")):
        refused = iwae_cli(command[0], f"run={smoke_run}", *command[1:], "unfinished=true", ok=False)
        assert refused.exit_code != 0 and refused.stdout == ""
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"error: cannot evaluate a run while it trains: {smoke_run} is being trained by "
                               f"pid {holder.pid}"), line
    assert "test_nll" not in read_json(smoke_run / "metrics.json")


def test_split_valid_without_a_holdout_is_refused(iwae_cli, smoke_run: Path) -> None:
    refused = iwae_cli("eval-nll", f"run={smoke_run}", "split=valid", *EVAL, ok=False)
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        f"error: split=valid: {smoke_run} was trained without a validation holdout (protocol.holdout=false), so "
        "it has no validation images; use split=test, or train a run with one (iwae train protocol=code, or "
        "protocol.holdout=true)"
    ]


def test_results_of_older_code_are_shown_as_such(iwae_cli, smoke_run: Path) -> None:
    """A test NLL recorded before provenance existed: listed with 'passes ?', taken by the tables as it is, and
    not computed again by evaluate=true."""
    metrics = read_json(smoke_run / "metrics.json")
    metrics["test_nll"] = {"nll": 150.0, "standard_error": 1.0, "k": 3, "n": 20, "seed": 123}
    (smoke_run / "metrics.json").write_text(json.dumps(metrics))
    row = listed_row(iwae_cli, SMOKE_RUN)
    assert "150.00±1.00 @k3 n=20" in row and "nll: passes ?" in row
    assert evaluated(smoke_run) and cell_summary([smoke_run])["eval_passes"] == "?"
    assert cell_summary([smoke_run])["eval_torch"] == "?"
