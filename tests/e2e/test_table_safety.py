"""A table command that cannot make a table leaves the earlier one as it was: a bad setting is one line and exit 2
before anything trains or is written, and a table in which no cell has numbers never replaces one that has some.
Driven through the real CLI, on an earlier smoke Table 1 of one cell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iwae_cli.reports.tables.outcome import NO_CELLS

ONE_CELL = ("profile=smoke", "datasets=[mnist]", "depths=[1]", "ks=[1]", "objectives=[vae]", "download=never")


def iwae(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iwae_cli", *args], env=env, capture_output=True, text=True,
                          timeout=400)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the output root (the tables, their figures and the runs), by path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, mnist_data_dir: Path) -> tuple[dict[str, str], Path]:
    """An output root with a finished one-cell smoke Table 1 (its table, claims and figures)."""
    root = tmp_path_factory.mktemp("safety") / "outputs"
    env = {**os.environ, "IWAE_DATA_DIR": str(mnist_data_dir), "IWAE_OUTPUT_ROOT": str(root)}
    result = iwae(["table1", *ONE_CELL], env)
    assert result.returncode == 0, result.stderr[-2000:]
    tables = root / "tables" / "smoke"
    assert {"table1.csv", "table1.md", "table1_claims.csv", "samples.png"} <= {p.name for p in tables.iterdir()}
    return env, root


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("datasets=[mnsit]", "datasets: unknown dataset 'mnsit'"),
        ("ks=[0]", "ks must list whole numbers >= 1"),
        ("objectives=[vae,nope]", "objectives: unknown objective 'nope'"),
        ("objectives=[vae,miwae]", "model.groups (M=5) must divide k=1"),
        ("train_overrides=['nosuchkey=1']", "train_overrides=['nosuchkey=1']"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_and_touches_nothing(earlier, setting: str, named: str) -> None:
    env, root = earlier
    before = snapshot(root)
    result = iwae(["table1", *ONE_CELL, setting], env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert named in lines[0]
    assert snapshot(root) == before  # no table replaced, no run started


def test_a_table_without_numbers_keeps_the_earlier_table(earlier) -> None:
    """OMNIGLOT is a good setting whose data is missing here: every cell is empty, so the earlier table stays and
    the one line says so."""
    env, root = earlier
    before = snapshot(root / "tables")
    result = iwae(["table1", *ONE_CELL, "datasets=[omniglot]"], env)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == NO_CELLS and len(lines) == 1, result.stderr[-2000:]
    assert "no Table 1 cell has numbers (not run: OMNIGLOT not found" in lines[0] and "is kept" in lines[0]
    assert snapshot(root / "tables") == before
