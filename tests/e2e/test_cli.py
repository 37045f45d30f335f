"""The `iwae` command line: help, Hydra features (--cfg, run dirs, -m sweeps, launchers), analysis."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SMOKE = ("schedule=smoke", "progress=false")
RUN_FILES = ("train.log", "checkpoint.pt", "config.yaml", "metrics.json", "status.json", "train_log.csv",
             "samples.png", "learning_curve.png")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def load_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def section(text: str, start: str, end: str | None) -> list[str]:
    body = text.split(start, 1)[1]
    if end is not None:
        body = body.split(end, 1)[0]
    return [line for line in body.splitlines() if line.strip()]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# ------------------------------------------------------------------------------------------ help and config


def test_help_lists_every_subcommand_with_a_summary(iwae_cli) -> None:
    result = iwae_cli("--help")
    commands = {}
    for line in section(result.stdout, "Commands:", None):
        name, _, summary = line.strip().partition(" ")
        commands[name] = summary.strip()
    for name in ("train", "eval-nll", "active-units", "switch-objective", "runs", "data"):
        assert commands.get(name), f"{name} missing or without a summary in:\n{result.stdout}"
    assert all(commands.values()), commands


def test_no_arguments_shows_the_help(iwae_cli) -> None:
    result = iwae_cli(ok=False)
    assert "Commands:" in result.stdout + result.stderr


def test_train_help_lists_the_config_groups(iwae_cli, output_root: Path) -> None:
    result = iwae_cli("train", "--help")
    groups = section(result.stdout, "Config groups", "Settings")
    listed = {line.split()[0]: line for line in groups if not line.startswith("   ")}
    for group in ("dataset", "model", "layers", "schedule", "optim", "profile"):
        assert group in listed, result.stdout
    assert "mnist" in listed["dataset"] and "smoke" in listed["schedule"] and "iwae" in listed["model"]
    assert "iwae train" in result.stdout
    assert not (output_root / "runs").exists()


def test_hydra_help_is_still_hydras(iwae_cli, output_root: Path) -> None:
    result = iwae_cli("train", "--hydra-help")
    assert "Hydra (" in result.stdout and "--cfg" in result.stdout, result.stdout
    assert not (output_root / "runs").exists()


def test_cfg_job_prints_the_config_and_trains_nothing(iwae_cli, output_root: Path) -> None:
    result = iwae_cli("train", "--cfg", "job", "k=7", "layers=2")
    assert re.search(r"^k: 7$", result.stdout, re.M), result.stdout
    assert re.search(r"^arch:$", result.stdout, re.M)
    assert "latent_units:\n  - 100\n  - 50" in result.stdout
    assert not (output_root / "runs").exists()


def test_cfg_job_may_follow_the_overrides(iwae_cli, output_root: Path) -> None:
    # the usual Hydra order; the CLI adds output_root=..., which must not land after the flag
    result = iwae_cli("table2", "profile=medium", "seeds=[0,1]", "--cfg", "job")
    assert re.search(r"^seeds:\n- 0\n- 1$", result.stdout, re.M), result.stdout
    assert f"output_root: {output_root.absolute()}" in result.stdout
    assert not (output_root / "runs").exists()


def test_python_dash_m_help(cli_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "iwae_cli", "--help"], env=cli_env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "eval-nll" in result.stdout


# ------------------------------------------------------------------------------------------ run directories


def test_hydra_run_dir_chooses_where_the_run_goes(iwae_cli, tmp_path: Path, output_root: Path) -> None:
    target = tmp_path / "somewhere" / "deeper"
    result = iwae_cli("train", *SMOKE, f"hydra.run.dir={target}")
    for name in RUN_FILES:
        assert (target / name).is_file(), name
    assert read_json(target / "status.json")["state"] == "done"
    assert str(target) in result.stdout
    assert not (output_root / "runs").exists()


def test_sweep_with_joblib_via_the_console_script(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    command = [str(iwae_script), "train", "-m", *SMOKE, "model=vae,iwae", "k=1,5", "hydra/launcher=joblib",
               "hydra.launcher.n_jobs=2"]
    result = subprocess.run(command, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for model in ("vae", "iwae"):
        for k in (1, 5):
            run = output_root / "runs" / f"mnist/L1-{model}-k{k}/smoke-text-paper-sum-seed0"
            assert read_json(run / "status.json")["state"] == "done", run
            summary = read_json(run / "metrics.json")["run"]
            assert (summary["objective"], summary["k"]) == (model, k)
            assert "[INFO]" in (run / "train.log").read_text() and not (run / ".hydra").exists()
    runs = sorted(p.parent for p in (output_root / "runs").rglob("status.json"))
    assert len(runs) == 4, runs


def test_sweep_with_the_basic_launcher_in_a_fresh_process(
    iwae_script: Path, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    """The sweep dir is resolved before any job runs (no HydraConfig yet): a fresh process shows it works."""
    result = subprocess.run([str(iwae_script), "train", "-m", *SMOKE, "k=1"], env=cli_env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    status = read_json(output_root / "runs" / "mnist/L1-iwae-k1/smoke-text-paper-sum-seed0/status.json")
    assert status["state"] == "done"


CHEAP_SWEEP = ("schedule=smoke", "schedule.train_examples=40", "schedule.passes=[1]",
               "schedule.learning_rates=[1e-3]", "evaluate=false", "compile=false", "progress=false")


@pytest.mark.parametrize("layers", ["layers=1,2", "layers=choice(1,2)", "layers=range(1,3)", "layers=glob(*)"])
def test_sweep_forms_over_the_numeric_layers_group(
    layers: str, cli_env: dict[str, str], output_root: Path, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "iwae_cli", "train", "-m", layers, *CHEAP_SWEEP]
    result = subprocess.run(command, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(p.name for p in (output_root / "runs" / "mnist").iterdir())
    assert [name.split("-")[0] for name in runs] == ["L1", "L2"], runs


@pytest.mark.parametrize(
    "layers, expected",
    [
        ("layers=[1,2]", "layers takes one config name per job"),
        ("layers=1.5", "layers takes one config name per job"),
        ("layers=interval(1,2)", "layers takes one config name per job"),
        ("layers=choice(1,", "cannot read layers=choice(1,"),
        ("layers=range(1,4)", "has no config 3"),
        ("layers=1,3", "has no config 3"),
        ("layers=glob(9*)", "selects no config"),
    ],
)
def test_unusable_layers_forms_are_one_line(iwae_cli, output_root: Path, layers: str, expected: str) -> None:
    result = iwae_cli("train", "-m", layers, *SMOKE, ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "layers configs are 1, 2" in lines[0] or "layers='range(1,3)'" in lines[0]
    assert not (output_root / "runs").exists()


def test_sweep_with_submitit_local(iwae_cli, output_root: Path) -> None:
    iwae_cli("train", "-m", *SMOKE, "model=vae", "k=1,5", "hydra/launcher=submitit_local",
             "hydra.launcher.timeout_min=5")
    for k in (1, 5):
        run = output_root / "runs" / f"mnist/L1-vae-k{k}/smoke-text-paper-sum-seed0"
        assert read_json(run / "status.json")["state"] == "done", run
        assert len((run / "train_log.csv").read_text().splitlines()) == 3


# ---------------------------------------------------------------------------------------- analysis commands


def test_eval_nll_prints_one_line_and_records_it(iwae_cli, smoke_run: Path) -> None:
    before = read_json(smoke_run / "metrics.json")
    result = iwae_cli("eval-nll", f"run={smoke_run}", "k=20", "examples=100", "progress=false")
    lines = [line for line in result.stdout.splitlines() if "NLL" in line]
    assert len(lines) == 1, result.stdout
    match = re.search(r"test NLL = (\d+\.\d+) ± (\d+\.\d+) nats \(k=20, n=100\)", lines[0])
    assert match, lines[0]
    assert str(smoke_run) in lines[0]
    metrics = read_json(smoke_run / "metrics.json")
    recorded = metrics["test_nll"]
    assert recorded["k"] == 20 and recorded["n"] == 100
    assert f"{recorded['nll']:.2f}" == match[1] and f"{recorded['standard_error']:.2f}" == match[2]
    assert 50 < recorded["nll"] < 300 and recorded["standard_error"] > 0
    assert metrics["run"] == before["run"] and metrics["train"] == before["train"]
    assert (smoke_run / "log_likelihoods_test.pt").is_file()

    again = iwae_cli("eval-nll", f"run={smoke_run}", "k=20", "examples=100", "progress=false")
    assert lines[0] in again.stdout  # seeded: the same estimate


def test_eval_nll_without_run_uses_the_latest(iwae_cli, smoke_run: Path, output_root: Path) -> None:
    import os

    older = output_root / "runs" / "mnist/L1-iwae-k5/smoke-text-paper-sum-seed1"
    shutil.copytree(smoke_run, older)
    os.utime(older / "checkpoint.pt", (1_000_000_000, 1_000_000_000))
    os.utime(smoke_run / "checkpoint.pt", (2_000_000_000, 2_000_000_000))
    result = iwae_cli("eval-nll", "k=3", "examples=10", "split=train", "progress=false")
    assert str(smoke_run) in result.stdout and "train NLL" in result.stdout
    assert read_json(smoke_run / "metrics.json")["train_nll"]["n"] == 10
    assert "train_nll" not in read_json(older / "metrics.json")


def test_active_units(iwae_cli, smoke_run: Path) -> None:
    before = read_json(smoke_run / "metrics.json")
    result = iwae_cli("active-units", f"run={smoke_run}", "examples=200")
    match = re.search(r"active units (\d+)", result.stdout)
    assert match, result.stdout
    assert (smoke_run / "active_units.png").stat().st_size > 0
    metrics = read_json(smoke_run / "metrics.json")
    au = metrics["active_units"]
    assert au["counts"] == [int(match[1])] and 0 <= au["counts"][0] <= 50
    assert au["examples"] == 200 and len(au["A_u"]) == 1 and len(au["A_u"][0]) == 50
    assert sum(a > au["threshold"] for a in au["A_u"][0]) == au["counts"][0]
    assert metrics["run"] == before["run"]


def test_switch_objective_continues_the_parent(iwae_cli) -> None:
    iwae_cli("train", *SMOKE, "model=vae", "k=1")
    parent = iwae_cli.run_dir("mnist/L1-vae-k1/smoke-text-paper-sum-seed0")
    parent_before = (parent / "checkpoint.pt").read_bytes()
    iwae_cli("switch-objective", f"run={parent}", "model=iwae", "k=5", "progress=false")
    child = parent.with_name(f"{parent.name}-then-iwae-k5")  # beside the run it continues
    assert read_json(child / "status.json")["state"] == "done"
    log = (child / "train_log.csv").read_text().splitlines()
    assert len(log) == 2 and ",0.0001," in log[1]  # smoke: switch_passes [1] at 1e-4
    config = (child / "config.yaml").read_text()
    assert "parent: mnist/L1-vae-k1/smoke-text-paper-sum-seed0\n" in config  # named relative to output_root
    assert read_json(child / "metrics.json")["run"]["parent"] == "mnist/L1-vae-k1/smoke-text-paper-sum-seed0"
    assert read_json(child / "metrics.json")["run"]["objective"] == "iwae"
    assert (parent / "checkpoint.pt").read_bytes() == parent_before

    p, c = load_checkpoint(parent), load_checkpoint(child)
    steps = {float(s["step"]) for s in p["optimizer"]["state"].values()}
    child_steps = {float(s["step"]) for s in c["optimizer"]["state"].values()}
    assert steps == {40.0} and child_steps == {60.0}  # Adam's state carried over: 2 x 20 steps, then 20 more
    # 20 steps at lr 1e-4 move each parameter a little from the parent's, far less than a fresh start would
    assert all((c["model"][key] - p["model"][key]).abs().max() < 1e-2 for key in p["model"])
    assert not all(torch.equal(c["model"][key], p["model"][key]) for key in p["model"])

    listing = iwae_cli("runs").stdout
    assert "mnist/L1-vae-k1/smoke-text-paper-sum-seed0-then-iwae-k5" in listing


def test_runs_lists_run_directories_with_their_state(iwae_cli, smoke_run: Path, output_root: Path) -> None:
    runs = output_root / "runs"
    killed = runs / "mnist/L1-iwae-k5/smoke-text-paper-sum-seed7"
    failed = runs / "mnist/L1-iwae-k5/smoke-text-paper-sum-seed8"
    for target, state in ((killed, "running"), (failed, "failed")):
        shutil.copytree(smoke_run, target)
        status = read_json(target / "status.json")
        status.update(state=state, pid=dead_pid())
        (target / "status.json").write_text(json.dumps(status))
    result = iwae_cli("runs")
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["mnist/L1-iwae-k5/smoke-text-paper-sum-seed0"][1] == "done"
    assert rows["mnist/L1-iwae-k5/smoke-text-paper-sum-seed7"][1] == "interrupted"  # "running", its process gone
    assert rows["mnist/L1-iwae-k5/smoke-text-paper-sum-seed8"][1] == "failed"
    assert result.stdout.splitlines()[0].split()[:3] == ["run", "state", "passes"]


def test_runs_on_an_empty_root(iwae_cli, output_root: Path) -> None:
    assert "no runs under" in iwae_cli("runs").stdout
