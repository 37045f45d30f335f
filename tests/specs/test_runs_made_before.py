"""Runs made at 4a4795b (fingerprint v1, names from raw YAML: tests/fixtures/runs_4a4795b) resume and are read
where they are, as they were written: their stored settings are typed as today's identity before comparing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from iwae_cli.errors import ConfigError
from iwae_cli.specs.run import stored_differences, typed_v1
from iwae_cli.specs.saved_run import load_run

FIXTURE = Path(__file__).parents[1] / "fixtures" / "runs_4a4795b"
TINY = ("arch.latent_units=[2]", "arch.encoder_hidden=[[4]]", "arch.decoder_hidden=[[4]]")
COMMAND = ("train", "dataset=mnist", "layers=1", "schedule=smoke", *TINY, "seed=0", "protocol=code", "threads=1",
           "progress=false")
VR = "mnist/L1-vr-k2/smoke-code-original_code-sum-seed0"  # v1's name: alpha is not in it (today: L1-vr-a0.5-k2)
IWAE = "mnist/L1-iwae-k2/smoke-code-original_code-sum-seed0"


@pytest.fixture
def old_runs(output_root: Path) -> Path:
    shutil.copytree(FIXTURE / "runs", output_root / "runs")
    return output_root / "runs"


def test_an_interrupted_v1_run_resumes_in_its_directory_to_the_bit(iwae_cli, old_runs: Path) -> None:
    iwae_cli(*COMMAND, "model=vr", "k=2")
    expected = json.loads((FIXTURE / "vr_uninterrupted_4a4795b.json").read_text())
    without_seconds = [line.rsplit(",", 1)[0] for line in expected["train_log_csv"].splitlines()]
    resumed = (old_runs / VR / "train_log.csv").read_text().splitlines()
    assert [line.rsplit(",", 1)[0] for line in resumed] == without_seconds
    metrics = json.loads((old_runs / VR / "metrics.json").read_text())
    assert metrics["train"]["final_train_bound"] == expected["final_train_bound"]
    assert not (old_runs / "mnist" / "L1-vr-a0.5-k2").exists()  # no second directory under today's name
    # the checkpoint it wrote now carries today's fingerprint, and the next start still finds the run
    assert torch.load(old_runs / VR / "checkpoint.pt", weights_only=True)["config"]["version"] == 2
    iwae_cli(*COMMAND, "model=vr", "k=2")
    assert not (old_runs / "mnist" / "L1-vr-a0.5-k2").exists()


def test_a_finished_v1_run_is_read_as_it_was_written(iwae_cli, old_runs: Path) -> None:
    before = {p.name: p.read_bytes() for p in (old_runs / IWAE).iterdir() if p.is_file()}
    run = load_run(old_runs / IWAE)
    assert run.metrics["test_nll"]["nll"] == pytest.approx(203.12422095747064)
    assert run.model.log_weights(torch.zeros(3, 784), 5).shape == (5, 3)
    listed = iwae_cli("runs", "objective=iwae").stdout
    (row,) = [line for line in listed.splitlines() if IWAE in line]
    assert "203.12" in row and row.split()[-1] == "v1"  # labelled: made before typed identities
    after = {p.name: p.read_bytes() for p in (old_runs / IWAE).iterdir() if p.is_file()}
    assert after == before  # reading wrote nothing


def test_a_v1_fingerprint_is_compared_by_its_typed_settings() -> None:
    stored = torch.load(FIXTURE / "runs" / IWAE / "checkpoint.pt", weights_only=True)["config"]
    assert "version" not in stored  # as 4a4795b wrote it: the raw config nodes
    typed = typed_v1(stored)
    assert typed["objective"] == {"name": "iwae", "params": {}, "k": 2} and typed["holdout"] == 400
    assert stored_differences(typed, stored) == []
    # a setting that differs is named, as for a v2 checkpoint
    other = {**typed, "seed": 4}
    assert stored_differences(other, stored) == ["seed: 0 in the checkpoint vs 4 now"]
    # an unused key in its YAML of the day is no difference
    assert stored_differences(typed, {**stored, "optim": {**stored["optim"], "unused": 1}}) == []
    with pytest.raises(ConfigError, match="no longer make a valid run"):
        typed_v1({**stored, "k": 0})


def test_a_finished_v1_run_asked_to_train_again_keeps_its_record(iwae_cli, old_runs: Path) -> None:
    files = [p for p in (old_runs / IWAE).iterdir() if p.is_file()]
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    result = iwae_cli(*COMMAND, "model=iwae", "k=2")
    assert "has finished its schedule; not training again" in result.stdout + result.stderr
    assert "checkpoint.pt is unverified" in result.stdout + result.stderr  # a v1 checkpoint has no checksum
    # the figures the fixture lacks are drawn; nothing it has is written again, so it still reads as v1
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert (old_runs / IWAE / "learning_curve.png").exists()
    (row,) = [line for line in iwae_cli("runs").stdout.splitlines() if IWAE in line]
    assert row.split()[-1] == "v1"
