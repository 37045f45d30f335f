"""A damaged run record or checkpoint is named in one line by the command that needs it, and `iwae runs` marks
the run damaged; checkpoints carry a checksum verified on load, and v1 checkpoints (made before it) are read as
they are, labelled unverified."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from iwae_cli.errors import RunError
from iwae_cli.runs.checkpoint import FORMAT, content_digest, load_checkpoint, save_checkpoint, verified
from iwae_cli.runs.records import run_state_with_lock
from tests.conftest import SMOKE_RUN

SMOKE = ("train", "schedule=smoke", "progress=false")
V1_RUN = Path(__file__).parents[1] / "fixtures" / "runs_4a4795b" / "runs" / "mnist" / "L1-iwae-k2"
V1_RUN = V1_RUN / "smoke-code-original_code-sum-seed0"


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def listed_state(iwae_cli, name: str = SMOKE_RUN) -> str:
    (row,) = [line for line in iwae_cli("runs").stdout.splitlines() if name in line]
    return row.split()[1]


def flip_a_tensor_byte(checkpoint: Path) -> None:
    """Flip one byte inside the stored bytes of the model's first tensor (the archive stays readable)."""
    state = torch.load(checkpoint, weights_only=True)
    tensor = next(iter(state["model"].values()))
    data = tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    raw = bytearray(checkpoint.read_bytes())
    at = raw.find(data)
    assert at >= 0 and raw.find(data, at + 1) < 0  # found, once
    raw[at + len(data) // 2] ^= 0x10
    checkpoint.write_bytes(bytes(raw))


# --------------------------------------------------------------------------------------------- the checksum


def test_a_checkpoint_carries_a_checksum_of_its_content(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "position": {"stage": 1}, "history": [{"a": 0.5}]}
    save_checkpoint(tmp_path, state)
    stored = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert stored["format"] == FORMAT and stored["checksum"] == content_digest(stored)
    loaded = load_checkpoint(tmp_path)
    assert verified(loaded) and "checksum" not in loaded and torch.equal(loaded["model"]["w"], state["model"]["w"])
    # any change to the content changes the digest: a value, a dtype, a shape, a key
    base = {"format": FORMAT, **state}
    for changed in (
        {**base, "position": {"stage": 2}},
        {**base, "model": {"w": torch.arange(6.0, dtype=torch.float64).reshape(2, 3)}},
        {**base, "model": {"w": torch.arange(6.0).reshape(3, 2)}},
        {**base, "model": {"v": torch.arange(6.0).reshape(2, 3)}},
    ):
        assert content_digest(changed) != content_digest(base)


def test_a_flipped_byte_in_a_tensor_is_refused_in_one_line(iwae_cli, smoke_run: Path) -> None:
    checkpoint = smoke_run / "checkpoint.pt"
    flip_a_tensor_byte(checkpoint)
    with pytest.raises(RunError, match="does not match its checksum"):
        load_checkpoint(checkpoint)
    for command in (("eval-nll", f"run={smoke_run}", "k=2", "examples=20"), SMOKE):
        result = iwae_cli(*command, ok=False)
        assert result.exit_code != 0
        line = one_error_line(result)
        assert f"{checkpoint} is damaged" in line and "restore it from a copy, or delete it" in line, line


def test_a_truncated_checkpoint_is_listed_damaged_and_named(iwae_cli, smoke_run: Path) -> None:
    checkpoint = smoke_run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    assert listed_state(iwae_cli) == "damaged"
    line = one_error_line(iwae_cli("eval-nll", f"run={smoke_run}", "k=2", "examples=20", ok=False))
    assert f"{checkpoint} is not a readable iwae checkpoint" in line and "restore it from a copy" in line, line
    line = one_error_line(iwae_cli(*SMOKE, ok=False))
    assert f"{checkpoint} is not a readable iwae checkpoint" in line, line


def test_a_v1_checkpoint_loads_labelled_unverified(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    with caplog.at_level(logging.WARNING):
        state = load_checkpoint(run)
    assert state["format"] == "iwae-checkpoint-v1" and not verified(state)
    assert f"{run / 'checkpoint.pt'} is unverified" in caplog.text
    assert run_state_with_lock(run) == "done"


# ------------------------------------------------------------------------------------------ the JSON records


@pytest.mark.parametrize("name", ["metrics.json", "status.json", "config.yaml"])
def test_an_unreadable_record_marks_the_run_damaged(iwae_cli, smoke_run: Path, name: str) -> None:
    record = smoke_run / name
    record.write_text('{"run": {"dataset": "mni' if name != "config.yaml" else "k: [5\n")
    before = {p.name: p.read_bytes() for p in smoke_run.iterdir() if p.is_file()}
    assert listed_state(iwae_cli) == "damaged"
    for command in (("eval-nll", f"run={smoke_run}", "k=2", "examples=20"), SMOKE):
        line = one_error_line(iwae_cli(*command, ok=False))
        assert line.startswith(f"error: {record} is damaged ("), line
        fix = "delete it" if name == "status.json" else f"delete the run directory {smoke_run}"
        assert fix in line, line
    assert {p.name: p.read_bytes() for p in smoke_run.iterdir() if p.is_file()} == before
