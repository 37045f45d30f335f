"""`iwae runs`: forty runs read at a glance, through the real CLI: key=value filters (several values: any of
them), sort=<column>[,...] (-<column>: descending), output_root=... as well as --root; a bad key is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fake_runs import run_name, write_runs


def listed(result) -> list[str]:
    """The run column of `iwae runs`' table, in order."""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "state", "passes", "test_nll", "units", "note", "made"], result.stdout
    return [line.split()[0] for line in lines[1:]]


@pytest.fixture
def runs(iwae_cli, output_root: Path):
    write_runs(output_root)
    return iwae_cli


def test_filters_take_key_value_and_several_values(runs) -> None:
    assert listed(runs("runs", "objective=iwae")) == [run_name("iwae", k, s) for k, s in ((5, 0), (50, 0), (50, 1))]
    assert listed(runs("runs", "objective=iwae", "k=50", "state=done")) == [run_name("iwae", 50, 0)]
    assert listed(runs("runs", "seed=1", "objective=vae,iwae")) == [run_name("iwae", 50, 1), run_name("vae", 50, 1)]
    assert listed(runs("runs", "dataset=mnist", "layers=1", "protocol=text")) == listed(runs("runs"))
    empty = runs("runs", "objective=rws")
    assert empty.stdout.strip().endswith("with objective=rws (5 runs in all)"), empty.stdout


def test_sort_by_columns_descending_and_missing_values_last(runs) -> None:
    by_nll = listed(runs("runs", "sort=test_nll"))
    assert by_nll == [run_name(*r) for r in (("iwae", 50, 0), ("vae", 50, 1), ("iwae", 5, 0), ("vae", 5, 0),
                                              ("iwae", 50, 1))]  # no NLL yet: last
    assert listed(runs("runs", "sort=-test_nll"))[:4] == by_nll[:4][::-1]
    assert listed(runs("runs", "sort=-test_nll"))[4] == run_name("iwae", 50, 1)
    # several keys: by k (as a number: 5 before 50), then by objective, descending
    assert listed(runs("runs", "sort=k,-objective")) == [
        run_name(*r) for r in (("vae", 5, 0), ("iwae", 5, 0), ("vae", 50, 1), ("iwae", 50, 0), ("iwae", 50, 1))
    ]
    row = next(line for line in runs("runs", "sort=test_nll").stdout.splitlines() if "iwae-k50" in line)
    assert "92.70±0.70 @k5000 n=500" in row  # sorted as numbers, printed with the k and n it was estimated with


def test_output_root_as_a_key_or_an_option(runs, output_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("IWAE_OUTPUT_ROOT", str(tmp_path / "elsewhere"))
    assert "no runs under" in runs("runs").stdout
    everything = listed(runs("runs", f"output_root={output_root}"))
    assert len(everything) == 5
    assert listed(runs("runs", "--root", str(output_root))) == everything
    assert listed(runs("runs", f"output_root={output_root}", "k=5")) == [run_name("iwae", 5, 0), run_name("vae", 5, 0)]


@pytest.mark.parametrize(
    "argument, message",
    [
        ("model=iwae", "error: iwae runs cannot filter by model: filter by state, dataset, layers, objective, k, "
                       "seed, schedule, protocol, optim, loss_reduction (key=a,b: a or b)"),
        ("sort=nll", "error: iwae runs cannot sort by nll: sort by run, state, dataset, layers, objective, k, seed, "
                     "passes, test_nll, units, made (sort=a,b: by a, then b; sort=-a: descending)"),
        ("sort=k,-bogus", "error: iwae runs cannot sort by bogus: sort by run,"),
        ("iwae", "error: iwae runs takes key=value arguments (filters, sort=..., output_root=...), got 'iwae'"),
        ("k=", "error: k= needs a value (several: k=a,b)"),
        ("state=done,finished", "error: state=finished is no state of a run: choose new, running, interrupted,"),
    ],
)
def test_a_bad_key_is_one_line(runs, argument: str, message: str) -> None:
    result = runs("runs", argument, ok=False)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
