"""Expected failures end with one `error: ...` line and a non-zero exit, never a traceback; whatever was on disk
before stays intact. (Mistakes in the overrides of every command: test_config_mistakes.py.)"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import iwae_cli.core.atomic as atomic_module

SMOKE = ("schedule=smoke", "progress=false")


def one_error_line(result) -> str:
    """The command failed with exactly one non-empty stderr line, which starts with `error: `."""
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def no_run_dirs(output_root: Path) -> bool:
    runs = output_root / "runs"
    return not runs.exists() or not any(p.name == "config.yaml" for p in runs.rglob("*"))


# -------------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "override, group",
    [
        ("dataset=foo", "dataset"),
        ("model=foo", "model"),
        ("schedule=foo", "schedule"),
        ("layers=foo", "layers"),
        ("layers=3", "layers"),
        ("optim=foo", "optim"),
    ],
)
def test_unknown_config_group_option(iwae_cli, output_root: Path, override: str, group: str) -> None:
    line = one_error_line(iwae_cli("train", *SMOKE, override, ok=False))
    assert f"{override} is not an option of {group}: choose " in line
    assert not (output_root / "runs").exists()


@pytest.mark.parametrize(
    "override, expected",
    [
        ("k=0", "k must be a whole number >= 1"),
        ("k=-1", "k must be a whole number >= 1"),
        ("k=2.5", "k must be a whole number >= 1"),
        ("k=abc", "k must be a whole number >= 1"),
        ("k=true", "k must be a whole number >= 1"),
        ("schedule.batch_size=0", "schedule.batch_size must be a whole number >= 1"),
        ("schedule.learning_rates=[-1e-3,1e-3]", "schedule.learning_rates must be positive"),
        ("schedule.learning_rates=[1e-3]", "must be non-empty lists of the same length"),
        ("schedule.passes=[-1,1]", "schedule.passes must be whole numbers >= 0"),
    ],
)
def test_bad_values_give_one_line(iwae_cli, output_root: Path, override: str, expected: str) -> None:
    result = iwae_cli("train", *SMOKE, "k=7", override, ok=False)
    assert expected in one_error_line(result)
    assert no_run_dirs(output_root)  # the directory Hydra made for the job is removed again


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=miwae", "model.groups (M=5) must divide k=7"),  # M=5 does not divide k=7
        ("model.name=foo", "unknown objective model=foo"),
        ("device=tpu", "device must be auto, cpu, cuda, cuda:<index> or mps, got device=tpu"),
        ("threads=0", "threads must be a whole number >= 1"),
    ],
)
def test_bad_values_found_when_building_the_trainer(iwae_cli, override: str, expected: str) -> None:
    assert expected in one_error_line(iwae_cli("train", *SMOKE, "k=7", override, ok=False))


def test_a_bad_config_leaves_no_empty_run_directory(iwae_cli, output_root: Path) -> None:
    one_error_line(iwae_cli("train", *SMOKE, "k=0", ok=False))
    assert not (output_root / "runs" / "mnist" / "L1-iwae-k0").exists()


def test_malformed_override(iwae_cli) -> None:
    line = one_error_line(iwae_cli("train", *SMOKE, "k=[1,", ok=False))
    assert "cannot read the override k=[1, (" in line


@pytest.mark.parametrize("command", ["train", "eval-nll"])
def test_multirun_with_cfg_is_one_line(iwae_cli, command: str) -> None:
    line = one_error_line(iwae_cli(command, "-m", "--cfg", "job", ok=False))
    assert "--cfg" in line or "--multirun" in line


# ----------------------------------------------------------------------------------------------------- data


def test_missing_data_dir(iwae_cli, output_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWAE_DATA_DIR", "/nonexistent")
    line = one_error_line(iwae_cli("train", *SMOKE, "download=never", ok=False))
    assert "/nonexistent/mnist" in line and "iwae data download" in line


def test_corrupt_data_file(
    iwae_cli, tmp_path: Path, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(mnist_data_dir / "mnist", data / "mnist")
    images = data / "mnist" / "train-images-idx3-ubyte.gz"
    with open(images, "r+b") as f:
        f.truncate(images.stat().st_size // 3)
    monkeypatch.setenv("IWAE_DATA_DIR", str(data))
    line = one_error_line(iwae_cli("train", *SMOKE, "download=never", ok=False))
    assert "train-images-idx3-ubyte.gz" in line


def test_data_with_a_wrong_header(
    iwae_cli, tmp_path: Path, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(mnist_data_dir / "mnist", data / "mnist")
    with gzip.open(data / "mnist" / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + b"\x00" * 100)  # a label file's magic number
    monkeypatch.setenv("IWAE_DATA_DIR", str(data))
    line = one_error_line(iwae_cli("train", *SMOKE, "download=never", ok=False))
    assert "t10k-images-idx3-ubyte.gz" in line


# ------------------------------------------------------------------------------------------ run directories


def test_eval_nll_on_a_missing_path(iwae_cli, tmp_path: Path) -> None:
    line = one_error_line(iwae_cli("eval-nll", f"run={tmp_path / 'nope'}", ok=False))
    assert "does not exist" in line


def test_eval_nll_on_a_directory_without_a_checkpoint(iwae_cli, smoke_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a trained run" in one_error_line(iwae_cli("eval-nll", f"run={empty}", ok=False))
    (smoke_run / "checkpoint.pt").unlink()
    assert "not a trained run" in one_error_line(iwae_cli("eval-nll", f"run={smoke_run}", ok=False))


def test_eval_nll_with_no_runs_at_all(iwae_cli) -> None:
    assert "no trained runs" in one_error_line(iwae_cli("eval-nll", "k=2", ok=False))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("k=0", "k must be a whole number >= 1"),
        ("k=abc", "k must be a whole number >= 1"),
        ("split=foo", "split must be test, valid or train, got split=foo"),
        ("examples=0", "examples must be a whole number >= 1"),
    ],
)
def test_eval_nll_bad_values(iwae_cli, smoke_run: Path, override: str, expected: str) -> None:
    before = (smoke_run / "metrics.json").read_bytes()
    assert expected in one_error_line(iwae_cli("eval-nll", f"run={smoke_run}", override, ok=False))
    assert (smoke_run / "metrics.json").read_bytes() == before


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "is not an iwae checkpoint"),
        (b"garbage", "is not a readable iwae checkpoint"),
        (b"", "is not a readable iwae checkpoint"),
        (bytes(range(256)), "is not a readable iwae checkpoint"),
        (b"this is not a checkpoint\n", "is not a readable iwae checkpoint"),  # torch.load: IndexError
        (b"hello world", "is not a readable iwae checkpoint"),  # torch.load: KeyError
    ],
    ids=["torch-dict", "garbage", "empty", "binary", "text-indexerror", "text-keyerror"],
)
def test_a_checkpoint_that_is_not_ours(
    iwae_cli, smoke_run: Path, content: bytes | None, expected: str
) -> None:
    checkpoint = smoke_run / "checkpoint.pt"
    if content is None:
        torch.save({"model": {"w": torch.ones(3)}}, checkpoint)
    else:
        checkpoint.write_bytes(content)
    before = checkpoint.read_bytes()
    for command in (
        ("eval-nll", f"run={smoke_run}", "k=2"),
        ("active-units", f"run={smoke_run}"),
        ("train", *SMOKE),
    ):
        line = one_error_line(iwae_cli(*command, ok=False))
        assert expected in line and str(checkpoint) in line, command
    assert checkpoint.read_bytes() == before


def test_a_plain_pickle_as_checkpoint_gives_one_line(
    iwae_script: Path, cli_env: dict[str, str], smoke_run: Path, tmp_path: Path
) -> None:
    with open(smoke_run / "checkpoint.pt", "wb") as f:
        pickle.dump({"weights": [1.0, 2.0]}, f, protocol=4)
    command = [str(iwae_script), "eval-nll", f"run={smoke_run}", "k=2"]
    result = subprocess.run(command, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not a readable iwae checkpoint" in lines[0], result.stderr


def test_switch_objective_needs_a_finished_parent(iwae_cli, smoke_run: Path) -> None:
    status = json.loads((smoke_run / "status.json").read_text())
    status["state"] = "interrupted"
    (smoke_run / "status.json").write_text(json.dumps(status))
    line = one_error_line(iwae_cli("switch-objective", f"run={smoke_run}", "model=vae", "k=1", ok=False))
    assert "has not finished" in line
    assert not smoke_run.with_name(f"{smoke_run.name}-then-vae-k1").exists()


# ------------------------------------------------------------------------------------------ the file system


@pytest.mark.parametrize("command", ["train", "eval-nll"])
def test_an_unwritable_output_directory(
    iwae_cli, tmp_path: Path, smoke_run: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("a file, so nothing can be created below it\n")
    monkeypatch.setenv("IWAE_OUTPUT_ROOT", str(afile / "out"))
    args = (*SMOKE,) if command == "train" else (f"run={smoke_run}", "k=2", "examples=5")
    line = one_error_line(iwae_cli(command, *args, ok=False))
    assert str(afile) in line


def test_an_unwritable_switch_objective_directory(iwae_cli, smoke_run: Path) -> None:
    """switch-objective creates <run>-then-<model>-k<k> itself; a file in its place must give one line."""
    smoke_run.with_name(f"{smoke_run.name}-then-vae-k1").write_text("a file where the run directory should go\n")
    line = one_error_line(iwae_cli("switch-objective", f"run={smoke_run}", "model=vae", "k=1", ok=False))
    assert "-then-vae-k1" in line


def test_a_full_disk_while_checkpointing(iwae_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second checkpoint write (end of stage 2) fails in fsync with ENOSPC; the stage-1 one stays."""
    run = iwae_cli.run_dir()
    real_fsync = os.fsync
    seen = {"checkpoints": 0}
    saved: dict[str, bytes] = {}

    def fsync(fd: int) -> None:
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            seen["checkpoints"] += 1
            if seen["checkpoints"] == 2:
                saved["checkpoint"] = (run / "checkpoint.pt").read_bytes()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(atomic_module.os, "fsync", fsync)
        line = one_error_line(iwae_cli("train", *SMOKE, ok=False))
    assert "No space left on device" in line and "checkpoint.pt" in line and "intact" in line
    assert (run / "checkpoint.pt").read_bytes() == saved["checkpoint"]
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["position"]["stage"] == 1
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []
    assert json.loads((run / "status.json").read_text())["state"] == "failed"

    # with space again, the same command resumes from stage 2 and finishes
    result = iwae_cli("train", *SMOKE)
    assert "resuming" in result.stdout
    assert json.loads((run / "status.json").read_text())["state"] == "done"


def test_a_failing_job_in_a_sweep_does_not_stop_the_others(iwae_cli, output_root: Path) -> None:
    result = iwae_cli("train", "-m", *SMOKE, "k=0,1", ok=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "error: k must be a whole number >= 1" in result.stderr
    status = json.loads((output_root / "runs/mnist/L1-iwae-k1/smoke-text-paper-sum-seed0/status.json").read_text())
    assert status["state"] == "done"


@pytest.mark.parametrize(
    "command, override",
    [
        ("train", "seed=abc"),
        ("train", "checkpoint_minutes=abc"),
        ("eval-nll", "examples=abc"),
        ("eval-nll", "eval.batch_size=0"),
        ("eval-nll", "eval.chunk=0"),
        ("active-units", "threshold=abc"),
    ],
)
def test_other_non_numbers_give_one_line(iwae_cli, smoke_run: Path, command: str, override: str) -> None:
    args = (*SMOKE, "seed=1") if command == "train" else (f"run={smoke_run}", "k=2", "examples=5")
    if command == "active-units":
        args = (f"run={smoke_run}",)
    result = iwae_cli(command, *args, override, ok=False)
    assert override.split("=")[0].split(".")[-1] in one_error_line(result)
