"""`iwae train` end to end, in-process: run directories, determinism, resume refusal, objectives, NaNs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import iwae_cli.training.trainer as train_module
from iwae_cli.core.objective_registry import OBJECTIVES
from iwae_cli.core.objectives import Estimate
from iwae_cli.runs.history import HISTORY_COLUMNS
from iwae_cli.specs.identity import short_params
from tests.helpers.run_checks import schedule_name, schedule_overrides

SMOKE = ("schedule=smoke", "progress=false")


def load_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def read_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_finite_log(run_dir: Path, rows: int) -> list[dict[str, str]]:
    log = read_log(run_dir)
    assert len(log) == rows, log
    assert [int(r["passes_done"]) for r in log] == list(range(1, rows + 1))
    held_out = OmegaConf.load(run_dir / "config.yaml").protocol.holdout
    for row in log:
        assert math.isfinite(float(row["train_bound"])) and float(row["train_bound"]) < 0, row
        # a validation bound exists only where the training split holds images out (protocol=code)
        valid = float(row["valid_bound"])
        assert (math.isfinite(valid) and valid < 0) if held_out else math.isnan(valid), row
    return log


def assert_done(run_dir: Path, passes: int = 2) -> None:
    assert read_json(run_dir / "status.json")["state"] == "done"
    assert read_json(run_dir / "metrics.json")["train"]["passes_done"] == passes
    assert_finite_log(run_dir, passes)
    state = load_checkpoint(run_dir)
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def model_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir)["model"]


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -------------------------------------------------------------------------------------------- a run's files


def test_smoke_run_writes_a_complete_run_directory(smoke_run_template: Path) -> None:
    run = smoke_run_template
    for name in ("config.yaml", "checkpoint.pt", "train_log.csv", "metrics.json", "status.json", "train.log",
                 "samples.png", "learning_curve.png"):
        assert (run / name).is_file(), name
    assert not (run / ".hydra").exists()  # the run's config.yaml is its record; Hydra writes none of its own

    log = assert_finite_log(run, 2)
    assert list(log[0]) == list(HISTORY_COLUMNS)
    assert [(r["stage"], r["epoch"]) for r in log] == [("1", "1"), ("2", "1")]
    assert [float(r["learning_rate"]) for r in log] == [1e-3, 5e-4]

    state = load_checkpoint(run)
    assert {"model", "optimizer", "generator", "position", "config", "format"} <= set(state)
    assert state["position"]["passes_done"] == 2 and state["position"]["stage"] == 2
    assert state["config"]["objective"]["k"] == 5 and state["config"]["schedule"]["passes"] == [1, 1]
    assert isinstance(state["generator"], torch.Tensor) and state["optimizer"]["state"]

    metrics = read_json(run / "metrics.json")
    assert metrics["run"] == {
        "dataset": "mnist", "layers": 1, "latent_units": [50], "objective": "iwae", "k": 5, "seed": 0,
        "schedule": "smoke", "optim": "paper", "protocol": "text", "loss_reduction": "sum", "parent": None,
        "identity": 2,
    }
    assert metrics["train"]["passes_done"] == 2
    assert metrics["train"]["final_valid_bound"] is None  # the text protocol trains on the whole split
    status = read_json(run / "status.json")
    assert status["state"] == "done" and status["message"] is None

    config = (run / "config.yaml").read_text()
    assert "k: 5" in config and "${" not in config  # resolved


def test_same_seed_is_bit_identical_and_another_seed_differs(
    iwae_cli, smoke_run_template: Path, tmp_path: Path
) -> None:
    """The session's smoke run (seed 0) again in another directory, and with seed 1."""
    runs = {"a": smoke_run_template, "b": tmp_path / "b", "c": tmp_path / "c"}
    for name, seed in (("b", 0), ("c", 1)):
        iwae_cli("train", *SMOKE, "k=5", f"seed={seed}", f"hydra.run.dir={runs[name]}")
    a, b, c = (model_tensors(runs[name]) for name in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)
    bounds = ("train_bound", "valid_bound")
    log_a, log_b, log_c = ([[r[col] for col in bounds] for r in read_log(runs[n])] for n in "abc")
    assert log_a == log_b and log_a != log_c
    gen_a, gen_b = (load_checkpoint(runs[n])["generator"] for n in "ab")
    assert torch.equal(gen_a, gen_b)
    opt_a, opt_b = (load_checkpoint(runs[n])["optimizer"]["state"] for n in "ab")
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def every_file(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Each file under run_dir (hidden ones too) by its relative path: its mtime and bytes."""
    return {
        str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def test_rerunning_a_finished_run_writes_nothing(iwae_cli, smoke_run: Path) -> None:
    before = every_file(smoke_run)
    assert "checkpoint.pt" in before and "train.log" in before
    result = iwae_cli("train", *SMOKE)
    assert "has finished its schedule; not training again" in result.stdout
    assert every_file(smoke_run) == before  # not a byte nor an mtime: no .hydra/, no line in train.log
    assert_done(smoke_run)


def test_a_checkpoint_of_another_config_is_refused(iwae_cli, smoke_run: Path) -> None:
    before = (smoke_run / "checkpoint.pt").read_bytes()
    result = iwae_cli("train", *SMOKE, "k=50", f"hydra.run.dir={smoke_run}", ok=False)
    assert result.exit_code != 0
    line = one_error_line(result)
    assert "another configuration" in line and "objective.k: 5 in the checkpoint vs 50 now" in line
    assert "schedule" not in line.split("(", 1)[1]  # only the differing key is named
    assert (smoke_run / "checkpoint.pt").read_bytes() == before
    assert read_json(smoke_run / "status.json")["state"] == "done"


def test_a_refused_resume_leaves_the_run_description_alone(iwae_cli, smoke_run: Path) -> None:
    before = {name: (smoke_run / name).read_bytes() for name in ("config.yaml", "metrics.json")}
    iwae_cli("train", *SMOKE, "k=50", f"hydra.run.dir={smoke_run}", ok=False)
    assert read_json(smoke_run / "metrics.json")["run"]["k"] == 5
    assert {name: (smoke_run / name).read_bytes() for name in before} == before


# ------------------------------------------------------------------------------------------------- variants


def test_schedule_overrides_change_the_passes(iwae_cli) -> None:
    schedule = {"passes": [1], "learning_rates": [2e-3]}
    iwae_cli("train", *SMOKE, *schedule_overrides(**schedule))
    run = iwae_cli.run_dir(f"mnist/L1-iwae-k5/{schedule_name('smoke', **schedule)}-text-paper-sum-seed0")
    assert_done(run, passes=1)
    assert float(read_log(run)[0]["learning_rate"]) == 2e-3
    assert load_checkpoint(run)["config"]["schedule"]["passes"] == [1]


def test_original_code_adam_trains(iwae_cli) -> None:
    iwae_cli("train", *SMOKE, "optim=original_code")
    run = iwae_cli.run_dir("mnist/L1-iwae-k5/smoke-text-original_code-sum-seed0")
    assert_done(run)
    optimizer_state = load_checkpoint(run)["optimizer"]["state"]
    assert {"m", "v", "step"} <= set(next(iter(optimizer_state.values())))
    assert read_json(run / "metrics.json")["run"]["optim"] == "original_code"


def test_two_stochastic_layers_train(iwae_cli) -> None:
    iwae_cli("train", *SMOKE, "layers=2")
    run = iwae_cli.run_dir("mnist/L2-iwae-k5/smoke-text-paper-sum-seed0")
    assert_done(run)
    assert read_json(run / "metrics.json")["run"]["latent_units"] == [100, 50]
    assert read_json(run / "metrics.json")["run"]["layers"] == 2
    assert load_checkpoint(run)["config"]["arch"]["latent_units"] == [100, 50]


def test_two_latent_units(iwae_cli) -> None:
    iwae_cli("train", *SMOKE, "arch.latent_units=[2]")
    (run,) = (iwae_cli.root / "runs" / "mnist").glob("L1-custom-*-iwae-k5/*")  # sizes not layers/1.yaml's
    assert_done(run)
    assert read_json(run / "metrics.json")["run"]["latent_units"] == [2]
    shapes = {tuple(t.shape) for t in model_tensors(run).values()}
    assert (2,) in shapes  # the latent mean / log-std biases


@pytest.mark.parametrize("model", sorted(OBJECTIVES))
def test_every_objective_trains(iwae_cli, model: str) -> None:
    """Every registered objective, with its conf/model defaults (groups = 5 divides k = 10)."""
    iwae_cli("train", *SMOKE, f"model={model}", "k=10")
    params = "".join(f"-{short}{value}" for short, value in short_params(OBJECTIVES[model].parameters).items())
    run = iwae_cli.run_dir(f"mnist/L1-{model}{params}-k10/smoke-text-paper-sum-seed0")
    assert_done(run)
    metrics = read_json(run / "metrics.json")
    assert metrics["run"]["objective"] == model and metrics["run"]["k"] == 10
    assert load_checkpoint(run)["config"]["objective"]["name"] == model
    # training improved the bound from stage 1 to stage 2
    log = read_log(run)
    assert float(log[1]["train_bound"]) > float(log[0]["train_bound"])


# ----------------------------------------------------------------------------------------- numerical errors


def test_a_non_finite_loss_stops_with_the_position_and_keeps_the_good_checkpoint(
    iwae_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 25 (stage 2, epoch 1, step 5 of 20) gets a NaN loss; the stage-1 checkpoint must survive."""
    real_step = train_module.train_step
    calls = {"n": 0}
    saved: dict[str, bytes] = {}
    run = iwae_cli.run_dir()

    def nan_objective(objective):
        def wrapped(model, x, k, noise=None):
            estimate = objective(model, x, k, noise)
            return Estimate(estimate.bound, estimate.loss * float("nan"), estimate.encoder_loss)

        return wrapped

    def flaky_step(model, optimizer, objective, intensities, k, generator):
        calls["n"] += 1
        if calls["n"] == 25:
            saved["checkpoint"] = (run / "checkpoint.pt").read_bytes()
            objective = nan_objective(objective)
        return real_step(model, optimizer, objective, intensities, k, generator)

    monkeypatch.setattr(train_module, "train_step", flaky_step)
    result = iwae_cli("train", *SMOKE, ok=False)
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "non-finite loss or gradient at stage 2, epoch 1, step 5" in line
    assert "last good checkpoint" in line
    assert (run / "checkpoint.pt").read_bytes() == saved["checkpoint"]
    state = load_checkpoint(run)
    assert state["position"]["stage"] == 1 and state["position"]["passes_done"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    status = read_json(run / "status.json")
    assert status["state"] == "failed" and "stage 2, epoch 1, step 5" in status["message"]
    assert len(read_log(run)) == 1


def test_a_huge_learning_rate_blows_up_cleanly(iwae_cli) -> None:
    schedule = {"learning_rates": [1e-3, 1e30]}
    result = iwae_cli("train", *SMOKE, *schedule_overrides(**schedule), ok=False)
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "non-finite loss or gradient at stage 2, epoch 1, step" in line
    run = iwae_cli.run_dir(f"mnist/L1-iwae-k5/{schedule_name('smoke', **schedule)}-text-paper-sum-seed0")
    state = load_checkpoint(run)  # the stage-1 checkpoint, never one with the blown-up parameters
    assert state["position"]["stage"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert all(t.abs().max() < 1e6 for t in state["model"].values())
    assert read_json(run / "status.json")["state"] == "failed"
    assert [f.name for f in run.iterdir() if f.name.endswith(".tmp")] == []


# --------------------------------------------------------------------------------------- protocol=text|code


def test_protocol_code_sets_every_difference_from_the_text(iwae_cli) -> None:
    text = iwae_cli("train", "--cfg", "job").stdout
    code = iwae_cli("train", "--cfg", "job", "protocol=code").stdout
    for key, text_value, code_value in (
        ("name", "paper", "original_code"),  # the optimiser (optim.name is the first `name:` after `optim:`)
        ("round_learning_rates", "false", "true"),
        ("holdout", "false", "true"),
        ("same_seed_init", "false", "true"),
        ("inclusive", "false", "true"),
    ):
        section = "\noptim:" if key == "name" else "\n"
        assert f"{key}: {text_value}" in text.split(section, 1)[-1], key
        assert f"{key}: {code_value}" in code.split(section, 1)[-1], key
    # one setting at a time still wins over the protocol's choice
    assert "variant: torch" in iwae_cli("train", "--cfg", "job", "protocol=code", "optim=paper").stdout


def test_protocol_code_rounds_the_rates_holds_out_and_names_its_run(iwae_cli) -> None:
    rates = {"learning_rates": [7.196856730011521e-4, 1.389495494373138e-4]}
    iwae_cli("train", *SMOKE, "protocol=code", *schedule_overrides(**rates))
    run = iwae_cli.run_dir(f"mnist/L1-iwae-k5/{schedule_name('smoke', **rates)}-code-original_code-sum-seed0")
    log = assert_finite_log(run, 2)  # with a validation bound: the code holds images out
    assert [float(r["learning_rate"]) for r in log] == [7.2e-4, 1.4e-4]
    summary = read_json(run / "metrics.json")["run"]
    assert (summary["protocol"], summary["optim"], summary["loss_reduction"]) == ("code", "original_code", "sum")
    assert math.isfinite(read_json(run / "metrics.json")["train"]["final_valid_bound"])


def test_rounding_that_would_zero_a_rate_is_refused(iwae_cli) -> None:
    result = iwae_cli("train", *SMOKE, "protocol=code", "schedule.learning_rates=[1e-3,1e-6]", ok=False)
    assert result.exit_code == 2 and "rounds rates below 5e-6 to zero" in result.stderr
