"""`run=`: a run directory, a path relative to the output root, or a name as `iwae runs` prints it; an unknown
or ambiguous name is one line with the candidates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iwae_cli.errors import RunError
from iwae_cli.runs.run_names import resolve_run_dir
from tests.conftest import SMOKE_RUN


def test_a_run_is_named_by_its_directory_a_path_under_the_output_root_or_its_listed_name(
    iwae_cli, smoke_run: Path, output_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SMOKE_RUN in iwae_cli("runs").stdout  # the name `iwae runs` prints
    for name in (smoke_run, SMOKE_RUN, f"runs/{SMOKE_RUN}", smoke_run.relative_to(tmp_path)):
        assert resolve_run_dir(str(name), output_root) == smoke_run, name
    monkeypatch.chdir(smoke_run.parent)
    assert resolve_run_dir(smoke_run.name, output_root) == smoke_run  # relative to the working directory
    result = iwae_cli("eval-nll", f"run={SMOKE_RUN}", "k=2", "examples=5", "progress=false")
    assert str(smoke_run) in result.stdout


def test_an_unknown_name_lists_the_closest_runs(iwae_cli, smoke_run: Path, output_root: Path) -> None:
    other = smoke_run.parent.parent / "L1-vae-k5" / smoke_run.name
    shutil.copytree(smoke_run, other)
    with pytest.raises(RunError) as e:
        resolve_run_dir("mnist/L1-iwae-k5/smoke-text-paper-sum-seed9", output_root)
    assert str(e.value) == (
        f"run=mnist/L1-iwae-k5/smoke-text-paper-sum-seed9 does not exist (not a directory, nor a run "
        f"under {output_root / 'runs'}); did you mean {SMOKE_RUN}, mnist/L1-vae-k5/smoke-text-paper-sum-seed0?"
    )
    result = iwae_cli("eval-nll", "run=smoke-text", "k=2", ok=False)  # part of a name: those containing it
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: run=smoke-text does not exist (not a directory, nor a run under {output_root / 'runs'}); did you "
        "mean mnist/L1-iwae-k5/smoke-text-paper-sum-seed0, mnist/L1-vae-k5/smoke-text-paper-sum-seed0?"
    ]
    with pytest.raises(RunError, match="list the runs with `iwae runs`"):
        resolve_run_dir("nothing-like-it", output_root)


def test_a_name_found_in_two_places_is_ambiguous(
    smoke_run: Path, output_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "elsewhere"
    shutil.copytree(smoke_run, here / SMOKE_RUN)
    monkeypatch.chdir(here)
    with pytest.raises(RunError) as e:
        resolve_run_dir(SMOKE_RUN, output_root)
    assert str(e.value) == (
        f"run={SMOKE_RUN} is ambiguous: it names {here / SMOKE_RUN} and {smoke_run}; pass one of them"
    )
