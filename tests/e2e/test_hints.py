"""What the CLI tells the user around a long job: which run `eval-nll` took when no run= names one (before it
starts), and a stopped run's resume command as the user typed it (`layers=1`, not the `layers='1'` Hydra gets),
which resumes the run when pasted."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest

from tests.helpers.background import kill_leftovers
from tests.helpers.run_checks import background_iwae, read_json, run_iwae, schedule_name, schedule_overrides

# 2 x 200 steps, a checkpoint every ~0.2 s: long enough to be stopped mid-way
SCHEDULE = {"train_examples": 4000}
LONG = ("schedule=smoke", *schedule_overrides(**SCHEDULE), "checkpoint_minutes=0.0035", "progress=false",
        "threads=1", "compile=false")
RUN = "mnist/L1-{model}-k5/" + schedule_name("smoke", **SCHEDULE) + "-text-paper-sum-seed0"  # LONG's run


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    kill_leftovers()


def test_eval_nll_without_run_names_the_run_k_and_examples_before_it_starts(
    smoke_run: Path, iwae_script: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    process = run_iwae(iwae_script, ("eval-nll", "k=3", "examples=10", "progress=true", "threads=1"), cli_env,
                       tmp_path / "logs")
    notice = f"no run= given, so using the most recently trained run, {smoke_run}: its test NLL with k=3 on 10 test images"
    assert notice in process.stderr.splitlines(), process.stderr
    assert process.stderr.index(notice) < process.stderr.index("L_3")  # before the estimate's progress bar


def test_the_notice_counts_the_whole_split_and_is_not_given_for_a_named_run(iwae_cli, smoke_run: Path) -> None:
    picked = iwae_cli("eval-nll", "k=1", "progress=false")  # examples=null: MNIST's 10,000 test images
    assert picked.stderr.splitlines() == [
        f"no run= given, so using the most recently trained run, {smoke_run}: its test NLL with k=1 on 10,000 test images"
    ]
    units = iwae_cli("active-units", "examples=50")
    assert units.stderr.splitlines() == [
        f"no run= given, so using the most recently trained run, {smoke_run}: its active units on 50 training images"
    ]
    named = iwae_cli("eval-nll", f"run={smoke_run}", "k=2", "examples=10", "progress=false")
    assert "no run= given" not in named.stderr


def stopped_hint(process, runs: list[Path]) -> str:
    """SIGTERM once every run has a checkpoint; the command the stopped process says resumes it."""
    process.wait_for(lambda: all((r / "checkpoint.pt").exists() for r in runs), "the runs checkpointed")
    assert process.popen.poll() is None, "the runs finished before the signal: lengthen the schedule"
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait() != 0
    assert "Traceback" not in process.stderr
    return process.stderr.split("Resume with: ", 1)[1].split("\n")[0]


def test_the_resume_hint_says_layers_as_typed_and_resumes_the_run(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    run = output_root / "runs" / RUN.format(model="iwae")
    process = background_iwae(iwae_script, ("train", "layers=1", *LONG), cli_env, tmp_path / "first")
    hint = stopped_hint(process, [run])
    assert hint.startswith("iwae train layers=1 schedule=smoke "), hint
    assert "'" not in hint  # nothing here needs a shell quote
    resumed = run_iwae(iwae_script, shlex.split(hint)[1:], cli_env, tmp_path / "resume")
    assert "resuming" in resumed.stdout
    assert read_json(run / "status.json")["state"] == "done"


def test_a_stopped_group_hint_says_layers_as_typed_and_resumes_the_group(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    runs = [output_root / "runs" / RUN.format(model=model) for model in ("vae", "iwae")]
    args = ("train", "-m", "layers=1", "model=vae,iwae", "group=true", *LONG)
    hint = stopped_hint(background_iwae(iwae_script, args, cli_env, tmp_path / "first"), runs)
    assert hint.startswith("iwae train -m layers=1 schedule=smoke ") and "'" not in hint, hint
    assert hint.endswith(" model=vae,iwae group=true"), hint
    resumed = run_iwae(iwae_script, shlex.split(hint)[1:], cli_env, tmp_path / "resume")
    assert resumed.stdout.count("resuming") == 2
    assert all(read_json(r / "status.json")["state"] == "done" for r in runs)
