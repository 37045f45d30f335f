"""`iwae train -m hydra/sweeper=optuna ...`: each trial an ordinary run in its own directory, returning its
sweep_metric (a number to minimise), which the sweeper's optimization_results.yaml reports for the best trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

# two trials of VR-alpha, alpha searched in [0, 1]; one pass over 100 images each (seconds)
SEARCH = (
    "train",
    "-m",
    "hydra/sweeper=optuna",
    "hydra.sweeper.n_trials=2",
    "hydra.sweeper.sampler.seed=0",
    "model=vr",
    "model.alpha=interval(0,1)",
    "schedule=smoke",
    "schedule.passes=[1]",
    "schedule.learning_rates=[1e-3]",
    "schedule.train_examples=100",
    "progress=false",
    "compile=false",
)


def trials(output_root: Path) -> dict[float, Path]:
    """The sweep's run directories by the alpha each trained with (from its config, not its name)."""
    runs = {}
    for config in (output_root / "runs").rglob("config.yaml"):
        if ".hydra" not in config.parts:
            runs[yaml.safe_load(config.read_text())["model"]["alpha"]] = config.parent
    return runs


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def best_of(output_root: Path, value_of) -> tuple[dict, float]:
    """The trial with the lowest recorded number, as optimization_results.yaml should name it."""
    runs = trials(output_root)
    assert len(runs) == 2, runs
    for alpha, run in runs.items():  # each an ordinary, finished run, named by the alpha it tried
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        assert run.parent.name == f"L1-vr-a{alpha!r}-k5" and (run / "checkpoint.pt").is_file()
        assert metrics(run)["run"]["objective"] == "vr"
    alpha, run = min(runs.items(), key=lambda item: value_of(metrics(item[1])))
    return {"model.alpha": alpha}, value_of(metrics(run))


def test_optuna_minimises_the_final_validation_bound(iwae_cli, output_root: Path) -> None:
    result = iwae_cli(*SEARCH, "protocol=code")  # sweep_metric=auto: valid_nll_bound (protocol=code validates)
    params, value = best_of(output_root, lambda m: -m["train"]["final_valid_bound"])
    results = yaml.safe_load((output_root / "runs" / "optimization_results.yaml").read_text())
    assert results["best_params"] == params
    assert results["best_value"] == pytest.approx(value, rel=1e-12, abs=0)
    assert f"Best value: {results['best_value']}" in result.stdout + result.stderr
    listing = iwae_cli("runs", "objective=vr", "state=done").stdout
    assert len(listing.splitlines()) == 3, listing  # the header and both trials


def test_optuna_minimises_the_nll_that_evaluate_records(iwae_cli, output_root: Path) -> None:
    iwae_cli(*SEARCH, "evaluate=true", "sweep_metric=nll", "eval.k=5", "eval.examples=20",
             "active_units.examples=50")
    params, value = best_of(output_root, lambda m: m["test_nll"]["nll"])
    results = yaml.safe_load((output_root / "runs" / "optimization_results.yaml").read_text())
    assert results["best_params"] == params
    assert results["best_value"] == pytest.approx(value, rel=1e-12, abs=0)
    assert all(metrics(run)["test_nll"]["k"] == 5 for run in trials(output_root).values())


def test_a_run_without_its_number_is_refused_before_it_trains(iwae_cli, output_root: Path) -> None:
    # protocol=text holds no validation set out and evaluate=false records no NLL: no number to return
    result = iwae_cli(*SEARCH, ok=False)
    assert result.exit_code != 0
    assert "error: sweep_metric=auto without evaluate=true is valid_nll_bound, which needs a validation set" in (
        result.stderr
    )
    assert not (output_root / "runs" / "optimization_results.yaml").exists()
    for run in trials(output_root).values():  # the refusal is recorded; nothing trained
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "failed" and "needs a validation set" in status["message"]
        assert not (run / "checkpoint.pt").exists()


def test_a_lockstep_group_is_refused_under_a_searching_sweeper(iwae_cli, output_root: Path) -> None:
    result = iwae_cli("train", "-m", "hydra/sweeper=optuna", "model=vae,iwae", "group=true", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: group=true trains several runs in one job, which returns no single number for "
        "hydra/sweeper=optuna to optimise: drop group=true"
    ]
    assert not (output_root / "runs").exists()
